"""Media for calls, pure: G.711, RTP and its statistics, RFC 4733 events, sources, recording.

Nothing here opens a socket or reads a clock: arrival times and random numbers come in
as values, and audio is 16-bit little-endian PCM at 8 kHz, 20 ms (160 samples) a frame.
"""
