"""One mail, two parts: the plain text and its HTML alternative, built from the same
paragraphs and link, so they always say the same thing. Every value is HTML-escaped here."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from modules.integrations import MailMessage

_HTML = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
    '<body style="font-family:system-ui,sans-serif;line-height:1.5;color:#1b1b1b">{body}'
    "</body></html>"
)


def link_from(template: str | None, default_base: str, path: str, token: str) -> str:
    """The mailed link: the team's template with `{token}` replaced, else this app's page."""
    encoded = quote(token, safe="")
    if template is not None:
        return template.replace("{token}", encoded)
    return f"{default_base}{path}?token={encoded}"


def compose(
    to: str,
    subject: str,
    before: Sequence[str],
    link: tuple[str, str] | None = None,
    after: Sequence[str] = (),
) -> MailMessage:
    """`before`, then the link (`(label, url)`) on a line of its own, then `after`."""
    text = [*before]
    html = [f"<p>{escape(p)}</p>" for p in before]
    if link is not None:
        label, url = link
        text.append(f"{label}:\n{url}")
        html.append(
            f'<p><a href="{escape(url)}">{escape(label)}</a></p>'
            f'<p style="color:#555;font-size:.9em">Or open this address: {escape(url)}</p>'
        )
    text.extend(after)
    html.extend(f"<p>{escape(p)}</p>" for p in after)
    return MailMessage(
        to=to,
        subject=subject,
        body="\n\n".join(text) + "\n",
        html=_HTML.format(title=escape(subject), body="".join(html)),
    )
