# bench_sftp.py: AsyncSSH's SFTP client for bench_sftp (one transfer, its
# defaults). Prints "wall_s cpu_s" of the transfer alone, connect excluded.
#   bench_sftp.py host port user key known_hosts cipher down|up src dst
import asyncio
import sys
import time
import warnings

warnings.simplefilter("ignore")
import asyncssh  # noqa: E402


async def main(host, port, user, key, known_hosts, cipher, direction, src, dst):
    async with asyncssh.connect(host, port=int(port), username=user, client_keys=[key],
                                known_hosts=known_hosts, encryption_algs=[cipher],
                                agent_path=None) as conn:
        async with conn.start_sftp_client() as sftp:
            t0, c0 = time.monotonic(), time.process_time()
            if direction == "down":
                await sftp.get(src, dst)
            else:
                await sftp.put(src, dst)
            print("%.6f %.6f" % (time.monotonic() - t0, time.process_time() - c0))


asyncio.run(main(*sys.argv[1:]))
