require "net/ssh"

OPTS = { port: Integer(ENV.fetch("SSH_PORT")), keys: [ENV.fetch("SSH_KEY")], keys_only: true,
         user_known_hosts_file: ENV.fetch("SSH_KNOWN_HOSTS"), verify_host_key: :always,
         config: false, non_interactive: true }

Net::SSH.start("127.0.0.1", ENV.fetch("SSH_USER"), **OPTS) do |ssh|
  ["echo hello", "echo to-stderr >&2", "printf 'a\\nb\\n'; exit 3", "true",
   "printf out; sleep 0.2; printf err >&2; sleep 0.2; printf out2", "kill -TERM $$"].each do |cmd|
    out = ssh.exec!(cmd)
    puts "#{cmd.inspect} -> #{out.inspect} (#{out.class.superclass}) status=#{out.exitstatus.inspect}"
  end
  status = {}
  ssh.exec!("exit 12", status: status)
  puts "status hash: #{status[:exit_code]}"
  chunks = []
  r = ssh.exec!("echo blocked") { |_ch, stream, data| chunks << [stream, data] }
  puts "with a block: #{r.inspect} #{chunks.inspect}"
end
