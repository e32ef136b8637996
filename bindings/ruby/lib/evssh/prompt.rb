# Net::SSH::Prompt: how a password, a keyboard-interactive answer or a key
# passphrase is asked for when none was given (password_prompt: replaces it).
# The default asks on the terminal without echo.
module EvSSH
  class Prompt
    def self.default(options = {})
      @default ||= new(options)
    end

    def initialize(options = {}); end

    class Prompter
      def initialize(info)
        return unless info[:type] == "keyboard-interactive"

        $stdout.puts(info[:name]) unless info[:name].to_s.empty?
        $stdout.puts(info[:instruction]) unless info[:instruction].to_s.empty?
      end

      def ask(prompt, echo = true)
        $stdout.print(prompt)
        $stdout.flush
        ret = if echo
                $stdin.gets.to_s.chomp
              else
                require "io/console"
                $stdin.noecho(&:gets).to_s.chomp
              end
        $stdout.print("\n")
        ret
      end

      def success; end
    end

    def start(info)
      Prompter.new(info)
    end
  end
end
