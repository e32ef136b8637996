# EvSSH::BufferedIo: Net::SSH::BufferedIo for IOs handed to Session#listen_to.
# It is plain Ruby IO plumbing (no SSH protocol): an input buffer filled from
# the IO when the loop sees it readable, an output queue the loop flushes
# when the IO is writable (the loop asks pending_write?).
module EvSSH
  module BufferedIo
    def input
      @input ||= EvSSH::Buffer.new
    end

    def output
      @output ||= EvSSH::Buffer.new
    end

    # Read what is there (up to n bytes) into the input buffer; 0 at EOF.
    def fill(n = 8192)
      input.consume!
      data = __evssh_read(n)
      input.append(data)
      data.length
    rescue EOFError
      0
    end

    def available
      input.available
    end

    def read_available(length = nil)
      input.read(length || available)
    end

    def read_buffer
      input.to_s
    end

    def enqueue(data)
      output.append(data)
    end

    def pending_write?
      output.length.positive?
    end

    def send_pending
      return unless output.length.positive?
      sent = __evssh_write(output.to_s)
      output.consume!(sent)
    end

    def wait_for_pending_sends
      send_pending
      while output.length.positive?
        IO.select(nil, [self])
        send_pending
      end
    end

    private

    def __evssh_read(n)
      if respond_to?(:recv)
        data = recv(n)
        raise EOFError if data.nil? || data.empty?
        data
      else
        read_nonblock(n)
      end
    rescue IO::WaitReadable
      ""
    end

    def __evssh_write(data)
      respond_to?(:send) && is_a?(BasicSocket) ? send(data, 0) : write_nonblock(data)
    rescue IO::WaitWritable
      0
    end
  end
end
