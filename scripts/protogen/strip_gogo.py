#!/usr/bin/env python3
"""Removes gogoproto and containerd fieldpath options from .proto files, in place.

These options only steer Go code generation; none changes the wire format.
What goes: `import weak` lines, imports of gogo.proto and fieldpath.proto,
`option (gogoproto.x) = v;` statements, and `(gogoproto.x) = v` entries of
field and enum-value option lists (the rest of such a list is kept).
Usage: strip_gogo.py FILE...
"""
import re
import sys

# One option assignment whose name is a gogo or fieldpath extension.
_OPT = r'\(\s*(?:gogoproto|containerd\.plugin)\.\w+\s*\)\s*=\s*(?:"(?:[^"\\]|\\.)*"|[\w.+-]+)'
_OPT_ONLY = re.compile(r'\s*' + _OPT + r'\s*')
_WEAK_IMPORT = re.compile(r'^[ \t]*import[ \t]+weak[ \t]+"[^"]*"[ \t]*;[ \t]*\n', re.M)
_GO_ONLY_IMPORT = re.compile(
    r'^[ \t]*import[ \t]+"[^"]*(?:gogoproto/gogo|protobuf/plugin/fieldpath)\.proto"[ \t]*;[ \t]*\n', re.M)
_OPTION_STATEMENT = re.compile(r'option\s+' + _OPT + r'\s*;')
_OPTION_LIST = re.compile(r'[ \t]*\[([^\[\]]*)\]')


def _split_entries(inner):
    """Splits an option list on commas that are outside string literals."""
    entries, current, quoted, escaped = [], '', False, False
    for ch in inner:
        if quoted:
            escaped = ch == '\\' and not escaped
            if ch == '"' and not escaped:
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ',':
            entries.append(current)
            current = ''
            continue
        current += ch
    entries.append(current)
    return entries


def _strip_list(match):
    entries = _split_entries(match.group(1))
    kept = [e for e in entries if not _OPT_ONLY.fullmatch(e)]
    if len(kept) == len(entries):
        return match.group(0)  # not an option list of ours (or a comment): unchanged
    if not kept:
        return ''
    return ' [' + ','.join(e.strip() for e in kept) + ']'


def strip(text):
    text = _WEAK_IMPORT.sub('', text)
    text = _GO_ONLY_IMPORT.sub('', text)
    text = _OPTION_STATEMENT.sub('', text)
    text = _OPTION_LIST.sub(_strip_list, text)
    return text


def main(paths):
    for path in paths:
        with open(path, encoding='utf-8') as f:
            text = strip(f.read())
        leftover = [line for line in text.splitlines()
                    if re.search(r'gogoproto\.|containerd\.plugin\.', line.split('//')[0])]
        if leftover:
            sys.exit('strip_gogo: %s: options left after stripping: %s' % (path, leftover[0].strip()))
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)


if __name__ == '__main__':
    main(sys.argv[1:])
