# AsyncSSH peer for test/bench/bench_multi: N sessions to one sshd with
# asyncio.gather, each connects, runs `echo ok` and closes; prints the number
# of "ok" lines received. Args: host port user key known_hosts N [kex]
# (prints kex-unsupported when this AsyncSSH lacks the kex method)
import asyncio
import sys
import warnings

warnings.simplefilter("ignore")
import asyncssh  # noqa: E402


async def one(host, port, user, key, known_hosts, kex):
    extra = {"kex_algs": [kex]} if kex else {}
    async with asyncssh.connect(host, port=port, username=user, client_keys=[key],
                                known_hosts=known_hosts, config=None, **extra) as conn:
        result = await conn.run("echo ok")
        return result.stdout


async def main():
    host, port, user, key, known_hosts, n = sys.argv[1:7]
    kex = sys.argv[7] if len(sys.argv) > 7 else None
    if kex:
        from asyncssh.kex import get_kex_algs
        if kex.encode() not in get_kex_algs():
            print("kex-unsupported")
            return
    results = await asyncio.gather(*[one(host, int(port), user, key, known_hosts, kex) for _ in range(int(n))],
                                   return_exceptions=True)
    oks = sum(r.count("ok\n") for r in results if isinstance(r, str))
    errors = [r for r in results if not isinstance(r, str)]
    for e in errors[:3]:
        print("error:", repr(e), file=sys.stderr)
    print("ok-lines", oks)


asyncio.run(main())
