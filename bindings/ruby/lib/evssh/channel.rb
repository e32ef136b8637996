# The Ruby part of EvSSH::Channel: Net::SSH::Connection::Channel's request_pty
# (with pixel sizes and terminal modes), the peer's channel number and the
# window sizes. Data, EOF, close, requests, callbacks and backpressure
# (pending, on_drain, pause/resume) are in C.
module EvSSH
  class Channel
    VALID_PTY_OPTIONS = { term: "xterm", chars_wide: 80, chars_high: 24, pixels_wide: 640, pixels_high: 480,
                          modes: {} }.freeze

    def request_pty(opts = {}, &block)
      extra = opts.keys - VALID_PTY_OPTIONS.keys
      raise ArgumentError, "invalid option(s) to request_pty: #{extra.inspect}" if extra.any?

      opts = VALID_PTY_OPTIONS.merge(opts)
      modes = opts[:modes].inject(Buffer.new) { |memo, (mode, data)| memo.write_byte(mode).write_long(data) }
      modes.write_byte(0)
      send_channel_request("pty-req", :string, opts[:term], :long, opts[:chars_wide], :long, opts[:chars_high],
                           :long, opts[:pixels_wide], :long, opts[:pixels_high], :string, modes.to_s, &block)
    end

    def remote_id
      _remote_id
    end

    %i[local_window_size local_maximum_window_size local_maximum_packet_size remote_window_size
       remote_maximum_window_size remote_maximum_packet_size].each_with_index do |name, i|
      define_method(name) do
        w = _windows
        w && w[i]
      end
    end

    def inspect
      "#<EvSSH::Channel #{local_id} #{type}#{closed? ? ' closed' : ''}>"
    end
  end
end
