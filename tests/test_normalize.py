"""The normalizer: charsets, HTML, attached and forwarded messages, quoting, defanging."""

from email.message import EmailMessage

from abuso.normalize import html_to_text, normalize, refang, unquote


def raw(headers: str, body: bytes) -> bytes:
    return headers.encode() + b"\n" + body


def test_charsets_and_transfer_encodings():
    m = normalize(raw("Content-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: base64\n",
                      b"9MXT1CAxOTIuMC4yLjE=\n"))
    assert "Тест 192.0.2.1" in m.text
    m = normalize(raw("Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n",
                      b"caf=E9 at 192.0.2.1=\n end\n"))
    assert "café at 192.0.2.1 end" in m.text


def test_unknown_and_lying_charsets_never_crash():
    m = normalize(raw("Content-Type: text/plain; charset=x-no-such\n", b"abc 192.0.2.1 \xff\xfe\n"))
    assert "192.0.2.1" in m.text and any("unknown charset" in p for p in m.problems)
    m = normalize(raw("Content-Type: text/plain; charset=us-ascii\n", "Grüße 192.0.2.1".encode("cp1252")))
    assert "Grüße 192.0.2.1" in m.text


def test_html_one_line_per_row_and_br():
    text = html_to_text("<table><tr><td>192.0.2.1</td><td>2026-11-22 03:14</td></tr>"
                        "<tr><td>192.0.2.2</td><td>x</td></tr></table>a<br>b<p>c</p><!-- 10.0.0.1 -->")
    lines = text.splitlines()
    assert lines[0].split() == ["192.0.2.1", "2026-11-22", "03:14"]
    assert lines[1].split() == ["192.0.2.2", "x"]
    assert lines[2:] == ["a", "b", "c"]
    assert "10.0.0.1" not in text  # comments are not content


def _attached(nameless: bool) -> bytes:
    inner = EmailMessage()
    inner["Received"] = "from spammer (spammer [198.51.100.7]) by mx.victim.example; Sat, 22 Nov 2026 03:14:07 +0100"
    inner["Subject"] = "cheap pills"
    inner.set_content("buy now")
    outer = EmailMessage()
    outer["Subject"] = "spam from your network"
    outer.set_content("See attached.")
    outer.add_attachment(inner, filename=None if nameless else "spam.eml")
    return outer.as_bytes()


def test_attached_message_keeps_its_headers_even_without_a_name():
    for nameless in (True, False):
        m = normalize(_attached(nameless))
        assert len(m.embedded) == 1
        headers = [b for b in m.blocks if b.kind == "headers"]
        assert headers and "198.51.100.7" in headers[0].text and headers[0].depth == 1
        assert any(b.depth == 1 and "buy now" in b.text for b in m.blocks)


def test_inline_forward_with_headers_becomes_an_embedded_message():
    body = (b"FYI, see below.\n\n---------- Forwarded message ---------\nFrom: Spammer <s@example.com>\n"
            b"Date: Sat, 22 Nov 2026 03:14:07 +0100\nSubject: win\nReceived: from x ([198.51.100.9])\n\nbody here\n")
    m = normalize(raw("Subject: Fwd: win\n", body))
    assert m.blocks[0].text.strip() == "FYI, see below."
    assert m.embedded and m.embedded[0]["Subject"] == "win"
    assert any(b.kind == "headers" and b.depth == 1 for b in m.blocks)


def test_quoting_is_removed_but_not_other_punctuation():
    assert unquote("> > Nov 22 sshd: 192.0.2.1\n>>x\n<html>") == "Nov 22 sshd: 192.0.2.1\nx\n<html>"


def test_defanged_addresses_are_refanged():
    assert refang("hxxp://evil[.]example/ from 192[.]0[.]2[.]1 and 198(.)51(.)100(.)2") == \
        "http://evil.example/ from 192.0.2.1 and 198.51.100.2"


def test_received_header_broken_by_quoting_is_rejoined():
    body = b"> Received: from bad.example (bad.example [198.51.100.7])\n> by mx.example with ESMTP id 1;\n" \
           b"> Sat, 22 Nov 2026 03:14:07 +0100\n"
    m = normalize(raw("Subject: x\n", body))
    assert "Received: from bad.example (bad.example [198.51.100.7]) by mx.example with ESMTP id 1; Sat, 22 Nov" \
        in m.text


def test_hostile_structures_are_bounded():
    deep = b"Content-Type: message/rfc822\n\n" * 50 + b"Subject: x\n\nend\n"
    m = normalize(deep)
    assert any("nested" in p for p in m.problems)
    parts = b"".join(b"--b\nContent-Type: text/plain\n\npart %d\n" % i for i in range(700))
    m = normalize(raw('Content-Type: multipart/mixed; boundary="b"\n', parts + b"--b--\n"))
    assert any("MIME parts" in p for p in m.problems)


def test_garbage_is_not_an_exception(rnd):
    for blob in (b"", b"\x00\xff" * 100, rnd.randbytes(4096), b"From: \xff\xfe\nSubject: =?utf-8?b?////?=\n\n\xff"):
        normalize(blob)


def test_alternative_is_read_once_and_html_stub_loses_to_html():
    from abuso.normalize import normalize as norm

    both = (b'Content-Type: multipart/alternative; boundary="a"\n\n--a\nContent-Type: text/plain\n\n'
            b"Source 192.0.2.1 at 2026-11-20 14:02:11 UTC\n--a\nContent-Type: text/html\n\n"
            b"<p>Source 192.0.2.1 at 2026-11-20 14:02:11 UTC</p>\n--a--\n")
    m = norm(both)
    assert [b.kind for b in m.blocks] == ["body"]
    stub = both.replace(b"Source 192.0.2.1 at 2026-11-20 14:02:11 UTC\n--a\n", b"View in HTML\n--a\n", 1)
    assert [b.kind for b in norm(stub).blocks] == ["html"]


def test_hostile_html_nesting_takes_the_linear_path():
    """Beautiful Soup is quadratic in nesting depth (minutes for this one); such HTML bypasses it."""
    from abuso.htmltext import _too_deep

    html = "<div>" * 50000 + "<b>192.0.2.1</b> at 2026-11-20 10:00:00 UTC" + "</div>" * 50000 + "<p>x&amp;y</p>"
    assert _too_deep(html)
    assert not _too_deep("<table>" + "<tr><td>1</td><td>2</td></tr>" * 1000 + "</table>")
    assert html_to_text(html).splitlines() == ["192.0.2.1 at 2026-11-20 10:00:00 UTC", "x&y"]


def test_nul_in_charset_name_is_an_unknown_charset_not_a_crash():
    m = normalize(raw('Content-Type: text/plain; charset="utf\x00-8"\n', b"from 192.0.2.1\n"))
    assert "192.0.2.1" in m.text and any("unknown charset" in p for p in m.problems)
