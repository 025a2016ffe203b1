#!/usr/bin/env python3
"""Writes a C++ header holding a page's bytes, so `g4 serve` ships its chat page inside the binary, and the
Content-Security-Policy source of its inline script ('sha256-...'): the page then runs that script and no other
(an injected <script> or onerror=... would not run, a second line of defence behind the page's own escaping).

usage: embed.py PAGE.html OUTPUT.hpp NAME  ->  NAME (std::string_view, the page), NAME_script_csp ("'sha256-...'")
The page is a byte-escaped string literal (not a raw string), so nothing in it can end the literal early."""
import base64
import hashlib
import re
import sys

src, out, name = sys.argv[1:4]
data = open(src, "rb").read()
scripts = re.findall(rb"<script>(.*?)</script>", data, re.S)
if len(scripts) != 1:
    sys.exit("embed.py: %s must hold exactly one inline <script> (found %d)" % (src, len(scripts)))
csp = "'sha256-%s'" % base64.b64encode(hashlib.sha256(scripts[0]).digest()).decode()
lines = ['"' + "".join("\\x%02x" % b for b in data[i:i + 64]) + '"' for i in range(0, len(data), 64)]
with open(out, "w") as f:
    f.write("// Generated from %s by embed.py: do not edit.\n#pragma once\n#include <string_view>\n" % src.split("/")[-1])
    f.write("inline constexpr std::string_view %s{\n%s,\n%d};\n" % (name, "\n".join(lines), len(data)))
    f.write('inline constexpr std::string_view %s_script_csp = "%s";\n' % (name, csp))
