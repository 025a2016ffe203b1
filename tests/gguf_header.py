"""A GGUF header reader for the tests, separate from the runtime's (GGUF v3: keys, then tensor infos whose
dimensions are stored innermost first), and the bytes of a tensor as ggml stores it."""
import struct

GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 8: "Q8_0", 12: "Q4_K", 14: "Q6_K", 30: "BF16"}
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf_header(path):
    b = path.read_bytes()
    at = 0

    def take(fmt):
        nonlocal at
        v = struct.unpack_from(fmt, b, at)
        at += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal at
        n = take("<Q")
        at += n
        return b[at - n:at].decode()

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(SCALARS[t])

    assert b[:4] == b"GGUF", "not a GGUF file"
    at = 4
    _, n_tensors, n_kv = take("<I"), take("<Q"), take("<Q")
    keys = {}
    for _ in range(n_kv):
        k = string()
        keys[k] = value(take("<I"))
    tensors = {}
    for _ in range(n_tensors):
        name = string()
        ne = [take("<Q") for _ in range(take("<I"))]
        tensors[name] = (GGML_TYPES[take("<I")], list(reversed(ne)))  # outermost first, as g4 prints shapes
        take("<Q")  # offset
    return keys, tensors


# ggml's block sizes: (elements, bytes) per block.
BLOCKS = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q4_0": (32, 18), "Q8_0": (32, 34), "Q4_K": (256, 144),
          "Q6_K": (256, 210)}


def tensor_bytes(type_name, shape):
    elements = 1
    for d in shape:
        elements *= d
    per, size = BLOCKS[type_name]
    return elements // per * size
