#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Embed a file in a program as a C string: embed.py IN OUT SYMBOL writes
# "const char SYMBOL[]" (NUL-terminated) and "const unsigned SYMBOL_len".
import sys

src, out, sym = sys.argv[1:4]
data = open(src, 'rb').read()
with open(out, 'w') as f:
    f.write('/* generated from %s by embed.py: do not edit */\n' %
            src.rsplit('/', 1)[-1])
    f.write('const char %s[] =\n' % sym)
    for line in data.splitlines(keepends=True):
        esc = ''.join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\?'
                      else '\\%03o' % b for b in line)
        f.write('    "%s"\n' % esc)
    f.write('    ;\n')
    f.write('const unsigned %s_len = %d;\n' % (sym, len(data)))
