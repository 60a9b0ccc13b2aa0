"use strict";
// MD5 (RFC 1321) of a string's UTF-8 bytes, as lower-case hex. The login route asks for
// the MD5 of the password (the vendor's API); WebCrypto has no MD5, so the page has this.
// Not for security: it only says the password the way the API wants it said.
(function (scope) {
  // Per-round shift amounts, four per round.
  const SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  // K[i] = floor(|sin(i + 1)| * 2^32), RFC 1321 §3.4.
  const K = new Uint32Array(64);
  for (let i = 0; i < 64; i++) {
    K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296) >>> 0;
  }

  // The message, then 0x80, zeros, and its length in bits (64 bits, little-endian),
  // to a multiple of 64 bytes.
  function padded(bytes) {
    const size = (((bytes.length + 8) >>> 6) + 1) * 64;
    const out = new Uint8Array(size);
    out.set(bytes);
    out[bytes.length] = 0x80;
    const view = new DataView(out.buffer);
    view.setUint32(size - 8, (bytes.length * 8) >>> 0, true);
    view.setUint32(size - 4, Math.floor(bytes.length / 536870912), true);
    return view;
  }

  function round(i, b, c, d) {
    if (i < 16) return [(b & c) | (~b & d), i];
    if (i < 32) return [(d & b) | (~d & c), (5 * i + 1) & 15];
    if (i < 48) return [b ^ c ^ d, (3 * i + 5) & 15];
    return [c ^ (b | ~d), (7 * i) & 15];
  }

  function block(state, view, offset) {
    let [a, b, c, d] = state;
    for (let i = 0; i < 64; i++) {
      const [f, g] = round(i, b, c, d);
      const sum = (a + f + K[i] + view.getUint32(offset + 4 * g, true)) >>> 0;
      const s = SHIFTS[(i >>> 4) * 4 + (i & 3)];
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << s) | (sum >>> (32 - s)))) >>> 0;
    }
    return [a, b, c, d].map((word, n) => (word + state[n]) >>> 0);
  }

  function hex(words) {
    let out = "";
    for (const word of words) {
      for (let shift = 0; shift < 32; shift += 8) {
        out += ((word >>> shift) & 255).toString(16).padStart(2, "0");
      }
    }
    return out;
  }

  scope.md5 = function md5(text) {
    const view = padded(new TextEncoder().encode(text));
    let state = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for (let offset = 0; offset < view.byteLength; offset += 64) {
      state = block(state, view, offset);
    }
    return hex(state);
  };
})(window);
