#!/bin/sh
# Every relative link and image in the Markdown documentation resolves: the
# file exists and, for a link into a Markdown file, the #anchor names one of
# its headings (GitHub's rule: lowercased, everything but letters, digits,
# spaces, hyphens and underscores removed, spaces to hyphens, -1, -2 ... on
# repeated headings). Scans README.md, docs/*.md, bench/README.md and
# examples/plugin/README.md; links in fenced code blocks and inline code,
# and http(s):// and mailto: targets, are not checked. Also fails when the
# two ```sh blocks under "## The two commands" in README.md are missing (CI
# runs the test command from there). One line per fault:
#   FILE:LINE: broken link TARGET (no such file|no heading #anchor in FILE)
# The source tree is $srcdir (make check sets it), else the current folder.
set -u
srcdir=${srcdir:-.}
python=$(command -v python3 2>/dev/null) || python=
if [ -z "$python" ]; then
  echo "SKIP: python3 is not installed"
  exit 77
fi
exec "$python" - "$srcdir" <<'PY'
import glob
import os
import re
import sys
import urllib.parse

srcdir = sys.argv[1]
FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})(.*)$')


def fence_mask(lines):
    """For each line: (is part of a fenced block, opening info string or None)."""
    out = []
    fence = None
    for ln in lines:
        s = ln.lstrip()
        m = FENCE.match(s)  # also fences indented inside list items
        if fence is None:
            if m and not (m.group(1)[0] == '`' and '`' in m.group(2)):
                fence = m.group(1)
                out.append((True, m.group(2).strip()))
            else:
                out.append((False, None))
        else:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = None
            out.append((True, None))
    return out


def slug(text):
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', text)  # a link's text only
    text = text.strip().lower()
    kept = ''.join(c for c in text if c.isalnum() or c in ' -_')
    return kept.replace(' ', '-')


def headings(lines):
    """Heading texts in order, outside fenced code (ATX and setext)."""
    mask = fence_mask(lines)
    out = []
    for i, ln in enumerate(lines):
        if mask[i][0]:
            continue
        m = re.match(r'^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$', ln)
        if m:
            out.append(m.group(2) or '')
            continue
        if (re.match(r'^ {0,3}(=+|-+)[ \t]*$', ln) and i > 0 and lines[i - 1].strip()
                and not mask[i - 1][0] and not lines[i - 1].lstrip().startswith(('#', '|', '-', '*', '>'))):
            out.append(lines[i - 1].strip())
    return out


anchor_cache = {}


def anchors(path):
    if path not in anchor_cache:
        with open(path, encoding='utf-8') as f:
            lines = f.read().split('\n')
        seen = {}
        result = set()
        for h in headings(lines):
            base = slug(h)
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else '%s-%d' % (base, n))
        anchor_cache[path] = result
    return anchor_cache[path]


def blank_code_spans(text):
    """Inline code replaced by spaces (newlines kept), within paragraphs."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        if text[i] != '`':
            out.append(text[i])
            i += 1
            continue
        j = i
        while j < n and text[j] == '`':
            j += 1
        run = text[i:j]
        # the closing run of exactly the same length, before a blank line
        k = j
        close = -1
        while k < n:
            if text.startswith('\n\n', k):
                break
            if text[k] == '`':
                e = k
                while e < n and text[e] == '`':
                    e += 1
                if e - k == len(run):
                    close = k
                    break
                k = e
            else:
                k += 1
        if close < 0:
            out.append(run)
            i = j
            continue
        end = close + len(run)
        out.append(''.join('\n' if c == '\n' else ' ' for c in text[i:end]))
        i = end
    return ''.join(out)


LINK = re.compile(r'\[[^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)')

files = ['README.md'] + sorted(os.path.relpath(p, srcdir) for p in glob.glob(os.path.join(srcdir, 'docs', '*.md')))
files += ['bench/README.md', 'examples/plugin/README.md']
faults = []
checked = 0
scanned = 0
for rel in files:
    path = os.path.join(srcdir, rel)
    if not os.path.isfile(path):
        faults.append('%s: missing (it is one of the files this test checks)' % rel)
        continue
    scanned += 1
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    mask = fence_mask(lines)
    text = '\n'.join('' if mask[i][0] else ln for i, ln in enumerate(lines))
    text = blank_code_spans(text)
    for m in LINK.finditer(text):
        target = m.group(1)
        line = text.count('\n', 0, m.start(1)) + 1
        if not target or re.match(r'^(https?:|mailto:)', target, re.I):
            continue
        if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):
            continue  # another scheme: not a file
        checked += 1
        file_part, _, frag = target.partition('#')
        file_part = urllib.parse.unquote(file_part)
        if file_part:
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
        else:
            dest = path
        if not os.path.exists(dest):
            faults.append('%s:%d: broken link %s (no such file)' % (rel, line, target))
            continue
        if frag and os.path.isfile(dest) and dest.endswith('.md'):
            if urllib.parse.unquote(frag) not in anchors(dest):
                faults.append('%s:%d: broken link %s (no heading #%s in %s)'
                              % (rel, line, target, frag, os.path.relpath(dest, srcdir)))

# The two commands: CI runs the test command from README.md verbatim.
readme = os.path.join(srcdir, 'README.md')
if os.path.isfile(readme):
    with open(readme, encoding='utf-8') as f:
        lines = f.read().split('\n')
    mask = fence_mask(lines)
    start = None
    for i, ln in enumerate(lines):
        if not mask[i][0] and re.match(r'^## +The two commands *$', ln):
            start = i
            break
    blocks = []
    if start is not None:
        i = start + 1
        while i < len(lines) and not (not mask[i][0] and re.match(r'^#{1,2} ', lines[i])):
            if mask[i][1] == 'sh':
                body = []
                i += 1
                while i < len(lines) and mask[i][0] and not FENCE.match(lines[i].lstrip()):
                    body.append(lines[i])
                    i += 1
                if any(b.strip() for b in body):
                    blocks.append(body)
            i += 1
    if start is None:
        faults.append('README.md: no "## The two commands" section (CI runs its test command)')
    elif len(blocks) < 2:
        faults.append('README.md:%d: "## The two commands" has %d ```sh command block(s), not the two '
                      '(the main job and the tests; CI runs the test command verbatim)' % (start + 1, len(blocks)))

for f in faults:
    print(f)
print('doc-links: %d links checked in %d files%s'
      % (checked, scanned, ', %d broken' % len(faults) if faults else ''))
sys.exit(1 if faults else 0)
PY
