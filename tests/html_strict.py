"""Reads an HTML page two strict ways and fails on the first complaint:
html5lib's parser in strict mode (any HTML5 parse error raises) and
Python's XML parser (the page must also be well-formed XML). Then checks
that nothing would be fetched: no script, no src attribute, no link element,
no url(...) in CSS, no href other than "#anchor".

Usage: html_strict.py PAGE. Exit 0 clean, 1 with the complaint,
77 (SKIP) without html5lib (Debian's python3-html5lib)."""
import sys
import xml.etree.ElementTree as ET

try:
    import html5lib
except ImportError:
    print("SKIP: strict HTML parsing (html5lib is not installed: Debian's python3-html5lib)")
    sys.exit(77)

page = open(sys.argv[1], "rb").read()
try:
    html5lib.HTMLParser(strict=True).parse(page)
except Exception as e:  # html5lib raises ParseError with the position
    print(f"{sys.argv[1]}: not strict HTML5: {e}")
    sys.exit(1)

text = page.decode("utf-8")
if not text.startswith("<!DOCTYPE html>\n"):
    print(f"{sys.argv[1]}: does not start with <!DOCTYPE html>")
    sys.exit(1)
try:
    root = ET.fromstring(text[len("<!DOCTYPE html>\n"):])
except ET.ParseError as e:
    print(f"{sys.argv[1]}: not well-formed XML: {e}")
    sys.exit(1)

for el in root.iter():
    tag = el.tag.split("}")[-1]
    if tag in ("script", "link", "iframe", "img", "object", "embed"):
        print(f"{sys.argv[1]}: a <{tag}> element")
        sys.exit(1)
    if "src" in el.attrib:
        print(f"{sys.argv[1]}: a src attribute on <{tag}>")
        sys.exit(1)
    href = el.attrib.get("href")
    if href is not None and not href.startswith("#"):
        print(f"{sys.argv[1]}: <{tag} href=\"{href}\"> leaves the page")
        sys.exit(1)
if "url(" in text:
    print(f"{sys.argv[1]}: url(...) in the page")
    sys.exit(1)
print(f"{sys.argv[1]}: strict HTML5 and well-formed XML, self-contained")
