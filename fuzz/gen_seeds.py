#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (standard library only; nothing here is committed
except this script): fuzz/corpus/decode/ and fuzz/corpus/multipart/.

decode: the small images and documents of tests/fixtures (at most 64 KiB, the -max_len used) plus tiny
hand-made images in every accepted format and the odd corners of each (alpha, palette,
16-bit, grey, EXIF orientation, top-down BMP, a one-colour lossless WebP, sizes at the limits).

multipart: the layout fuzz/fuzz_targets/multipart.rs reads: chunking byte, flags byte,
`Content-Type` line, body; well-formed uploads and the malformed ones tests/hostile.rs sends.

    python3 fuzz/gen_seeds.py          # from the repository root or from fuzz/
"""

import hashlib
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(ROOT, "fuzz", "corpus")
MAX_LEN = 65536


def png(w, h, color_type, depth, rows, extra=b"", interlace=0):
    """rows: list of raw scanline bytes (filter byte added here)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    if interlace:
        rows = adam7(rows, w, h, len(rows[0]) // w)
    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def adam7(rows, w, h, bpp):
    """Reorders whole-byte-per-sample scanlines into the seven Adam7 passes."""
    out = []
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                           (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        for y in range(y0, h, dy):
            line = b"".join(rows[y][x * bpp:(x + 1) * bpp] for x in range(x0, w, dx))
            if line:
                out.append(line)
    return out


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def bmp(w, h, bpp=24, top_down=False, palette=None):
    stride = ((w * bpp + 31) // 32) * 4
    pixels = bytearray()
    for y in range(h):
        row = bytearray()
        for x in range(w):
            v = (x * 37 + y * 11) & 0xFF
            if bpp == 24:
                row += bytes((v, 255 - v, (v * 3) & 0xFF))
            elif bpp == 32:
                row += bytes((v, 255 - v, 0, 128))
            elif bpp == 8:
                row.append(v % len(palette))
        row += b"\x00" * (stride - len(row))
        pixels += row
    pal = b"".join(bytes((b, g, r, 0)) for r, g, b in (palette or []))
    info = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bpp, 0,
                       len(pixels), 2835, 2835, len(palette or []), 0)
    offset = 14 + len(info) + len(pal)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return header + info + pal + bytes(pixels)


def gif(w, h, frames=1):
    """256-colour GIF; LZW written as 9-bit literal codes with a clear code every 250."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0))
    out += bytes(sum(((i, 255 - i, (i * 7) & 0xFF) for i in range(256)), ()))
    if frames > 1:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for f in range(frames):
        out += b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # graphic control: delay, no transparency
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08"
        codes = [256]
        for i in range(w * h):
            codes.append((i * 13 + f * 50) & 0xFF)
            if len(codes) % 250 == 0:
                codes.append(256)
        codes.append(257)
        bits, nbits, data = 0, 0, bytearray()
        for c in codes:
            bits |= c << nbits
            nbits += 9
            while nbits >= 8:
                data.append(bits & 0xFF)
                bits >>= 8
                nbits -= 8
        if nbits:
            data.append(bits & 0xFF)
        for i in range(0, len(data), 255):
            block = data[i:i + 255]
            out += bytes((len(block),)) + block
        out += b"\x00"
    return bytes(out + b"\x3b")


def tiff(w, h, samples=3, bits=8):
    pixels = bytes(((x * 31 + y * 7 + s * 80) & 0xFF)
                   for y in range(h) for x in range(w) for s in range(samples))
    entries = []
    bps_offset = 8 + len(pixels)
    extra = b""
    if samples == 1:
        bps = (258, 3, 1, bits)
    else:
        extra = struct.pack("<" + "H" * samples, *([bits] * samples))
        bps = (258, 3, samples, bps_offset)
    ifd_offset = bps_offset + len(extra)
    ifd_offset += ifd_offset & 1
    entries = [
        (256, 3, 1, w), (257, 3, 1, h), bps, (259, 3, 1, 1),
        (262, 3, 1, 2 if samples >= 3 else 1), (273, 4, 1, 8), (277, 3, 1, samples),
        (278, 3, 1, h), (279, 4, 1, len(pixels)), (284, 3, 1, 1),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if typ == 3 and count == 1:
            ifd += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += b"\x00\x00\x00\x00"
    body = b"II*\x00" + struct.pack("<I", ifd_offset) + pixels + extra
    body += b"\x00" * (ifd_offset - len(body))
    return body + ifd


def webp_lossless(w, h, argb=(255, 200, 30, 60), alpha=False):
    """A one-colour VP8L image: five single-symbol prefix codes, zero bits per pixel."""
    bits = []

    def put(value, n):
        for i in range(n):
            bits.append((value >> i) & 1)

    put(0x2F, 8)
    put(w - 1, 14)
    put(h - 1, 14)
    put(1 if alpha else 0, 1)
    put(0, 3)          # version
    put(0, 1)          # no transform
    put(0, 1)          # no colour cache
    put(0, 1)          # no meta prefix codes
    a, r, g, b = argb
    for symbol in (g, r, b, a, 0):  # green, red, blue, alpha, distance
        put(1, 1)      # simple code
        put(0, 1)      # one symbol
        put(1, 1)      # 8-bit symbol
        put(symbol, 8)
    data = bytearray()
    for i in range(0, len(bits), 8):
        data.append(sum(bit << j for j, bit in enumerate(bits[i:i + 8])))
    if len(data) & 1:
        data.append(0)
    chunk = b"VP8L" + struct.pack("<I", len(data)) + bytes(data)
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def exif_jpeg(jpeg, orientation):
    """Inserts an APP1 EXIF block with the given orientation right after SOI."""
    tiff_ifd = (b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01"
                + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00\x00\x00\x00")
    payload = b"Exif\x00\x00" + tiff_ifd
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def decode_seeds():
    seeds = {}
    for name in sorted(os.listdir(FIXTURES)):
        path = os.path.join(FIXTURES, name)
        # Documents too (PDF, multi-page TIFF): what scanners upload.
        if name.lower().endswith((".png", ".jpg", ".pdf", ".tif")) and os.path.getsize(path) <= MAX_LEN:
            with open(path, "rb") as f:
                seeds["fixture_" + name] = f.read()
    with open(os.path.join(FIXTURES, "line_055.jpg"), "rb") as f:
        jpeg = f.read()
    seeds["jpeg_exif6.jpg"] = exif_jpeg(jpeg, 6)
    seeds["jpeg_exif3.jpg"] = exif_jpeg(jpeg, 3)
    seeds["jpeg_exif_bad.jpg"] = exif_jpeg(jpeg, 0x7777)
    grad = lambda w, h, bpp: [bytes(((x * 9 + y * 5) & 0xFF) for x in range(w * bpp)) for y in range(h)]
    seeds["png_rgb.png"] = png(8, 6, 2, 8, grad(8, 6, 3))
    seeds["png_rgba.png"] = png(8, 6, 6, 8, grad(8, 6, 4))
    seeds["png_gray.png"] = png(8, 6, 0, 8, grad(8, 6, 1))
    seeds["png_gray_alpha.png"] = png(8, 6, 4, 8, grad(8, 6, 2))
    seeds["png_gray16.png"] = png(5, 3, 0, 16, grad(5, 3, 2))
    seeds["png_rgba16.png"] = png(4, 4, 6, 16, grad(4, 4, 8))
    seeds["png_gray1.png"] = png(16, 4, 0, 1, [b"\xa5\x3c"] * 4)
    palette = png_chunk(b"PLTE", bytes(range(48))) + png_chunk(b"tRNS", b"\x00\x80\xff")
    seeds["png_palette_trns.png"] = png(8, 4, 3, 4, [b"\x01\x23\x45\x67"] * 4, palette)
    seeds["png_1x1.png"] = png(1, 1, 2, 8, [b"\x00\x00\x00"])
    seeds["png_wide.png"] = png(4100, 1, 0, 8, [bytes(4100)])
    seeds["png_tall.png"] = png(1, 4100, 0, 8, [b"\x80"] * 4100)
    seeds["png_huge_header.png"] = png(20001, 3, 0, 1, [bytes(2501)] * 3)
    seeds["png_interlaced.png"] = png(8, 8, 0, 8, grad(8, 8, 1), interlace=1)
    seeds["bmp24.bmp"] = bmp(7, 5)
    seeds["bmp24_topdown.bmp"] = bmp(7, 5, top_down=True)
    seeds["bmp32.bmp"] = bmp(4, 3, bpp=32)
    seeds["bmp8.bmp"] = bmp(9, 4, bpp=8, palette=[(i * 16, 255 - i * 16, 7) for i in range(16)])
    seeds["gif.gif"] = gif(9, 7)
    seeds["gif_anim.gif"] = gif(6, 5, frames=2)
    seeds["tiff_rgb.tif"] = tiff(6, 4)
    seeds["tiff_gray.tif"] = tiff(6, 4, samples=1)
    seeds["tiff_rgba.tif"] = tiff(3, 3, samples=4)
    seeds["webp_lossless.webp"] = webp_lossless(17, 9)
    seeds["webp_lossless_alpha.webp"] = webp_lossless(5, 5, argb=(128, 0, 0, 0), alpha=True)
    return seeds


CT = "multipart/form-data; boundary={}"


def part(boundary, name, data, filename=None, ctype=None, crlf=b"\r\n"):
    disp = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disp += f'; filename="{filename}"'
    head = b"--" + boundary.encode() + crlf + disp.encode() + crlf
    if ctype:
        head += f"Content-Type: {ctype}".encode() + crlf
    return head + crlf + data + crlf


def body(boundary, *parts, end=True):
    out = b"".join(parts)
    if end:
        out += b"--" + boundary.encode() + b"--\r\n"
    return out


def mp(chunk, flags, content_type, data):
    return bytes((chunk, flags)) + content_type.encode() + b"\n" + data


def multipart_seeds():
    img = png(3, 2, 2, 8, [bytes(9), bytes(9)])
    b = "X-OCRBOX-BOUNDARY"
    seeds = {}
    ok = body(b, part(b, "image", img, "page.png", "image/png"))
    seeds["ok_one_chunk"] = mp(0, 3, CT.format(b), ok)
    seeds["ok_chunks_7"] = mp(7, 3, CT.format(b), ok)
    seeds["ok_chunks_1"] = mp(1, 2, CT.format(b), ok)
    seeds["ok_small_limit"] = mp(0, 0, CT.format(b), ok)
    seeds["ok_reset_after"] = mp(0, 0x83, CT.format(b), ok)
    seeds["ok_quoted_boundary"] = mp(0, 3, f'multipart/form-data; boundary="{b}"', ok)
    seeds["ok_charset_param"] = mp(
        0, 3, f"multipart/form-data; charset=utf-8; boundary={b}", ok)
    seeds["ok_other_fields"] = mp(5, 3, CT.format(b), body(
        b, part(b, "api", b"0123456789abcdef"), part(b, "image", img, "a.png"),
        part(b, "note", b"x" * 300)))
    seeds["ok_no_filename"] = mp(0, 3, CT.format(b), body(b, part(b, "image", img)))
    seeds["ok_preamble_epilogue"] = mp(0, 3, CT.format(b), b"preamble\r\n" + ok + b"epilogue")
    seeds["ok_lf_only"] = mp(0, 3, CT.format(b), body(b, part(b, "image", img, "a.png", crlf=b"\n")))
    seeds["ok_empty_image"] = mp(0, 3, CT.format(b), body(b, part(b, "image", b"", "e.png")))
    long_b = "a" * 70
    seeds["ok_long_boundary"] = mp(0, 3, CT.format(long_b), body(long_b, part(long_b, "image", img)))
    seeds["ok_utf8_filename"] = mp(0, 3, CT.format(b), body(
        b, part(b, "image", img).replace(b'name="image"', "name=\"image\"; filename*=UTF-8''%C3%A9.png".encode())))
    seeds["two_images"] = mp(0, 3, CT.format(b), body(
        b, part(b, "image", img), part(b, "image", img)))
    seeds["no_image_field"] = mp(0, 3, CT.format(b), body(b, part(b, "file", img, "a.png")))
    seeds["no_parts"] = mp(0, 3, CT.format(b), body(b))
    seeds["empty_body"] = mp(0, 3, CT.format(b), b"")
    seeds["unterminated"] = mp(3, 3, CT.format(b), body(b, part(b, "image", img), end=False))
    seeds["cut_in_headers"] = mp(0, 3, CT.format(b), ok[:40])
    seeds["wrong_boundary"] = mp(0, 3, CT.format("other"), ok)
    seeds["no_boundary"] = mp(0, 3, "multipart/form-data", ok)
    seeds["not_multipart"] = mp(0, 3, "application/octet-stream", img)
    seeds["urlencoded"] = mp(0, 3, "application/x-www-form-urlencoded", b"image=abc")
    seeds["too_large"] = mp(0, 0, CT.format(b), body(b, part(b, "image", b"\x89PNG" + bytes(600))))
    seeds["too_large_other_field"] = mp(0, 1, CT.format(b), body(
        b, part(b, "junk", bytes(5000)), part(b, "image", img)))
    seeds["no_disposition"] = mp(0, 3, CT.format(b), b"--" + b.encode()
                                 + b"\r\nContent-Type: image/png\r\n\r\n" + img + b"\r\n--" + b.encode() + b"--\r\n")
    seeds["bad_header_line"] = mp(0, 3, CT.format(b), b"--" + b.encode()
                                  + b"\r\nContent-Disposition form-data\r\n\r\nx\r\n--" + b.encode() + b"--\r\n")
    seeds["boundary_in_data"] = mp(2, 3, CT.format(b), body(
        b, part(b, "image", b"--" + b.encode() + b"x" + img)))
    seeds["many_headers"] = mp(0, 3, CT.format(b), b"--" + b.encode() + b"\r\n"
                               + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
                               + b'Content-Disposition: form-data; name="image"\r\n\r\nabc\r\n--'
                               + b.encode() + b"--\r\n")
    return seeds


def write(target, seeds):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        assert len(data) <= MAX_LEN, (name, len(data))
        digest = hashlib.sha1(data).hexdigest()[:12]
        with open(os.path.join(d, f"seed_{name}_{digest}"), "wb") as f:
            f.write(data)
    print(f"{d}: {len(seeds)} seeds")


if __name__ == "__main__":
    write("decode", decode_seeds())
    write("multipart", multipart_seeds())
