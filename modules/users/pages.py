"""The small HTML pages mailed links open: reset a password, confirm an address, undo an email
change. Server-rendered, no script at all, nothing loaded from elsewhere.

Every value is HTML-escaped here, in one place. A failure is shown as the problem it would be
in the API (title, detail, code, request id) in readable text, with the page's HTTP status.
The token travels in the page's URL and in a hidden field of its form, never further: the
pages load nothing (no third party can see a `Referer`; the middleware sends
`Referrer-Policy: no-referrer` and `Cache-Control: no-store` anyway), and the access log
records the path without its query.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from http import HTTPStatus

from fastapi.responses import HTMLResponse

from app.context import request_id_var
from app.errors import CODE_DETAILS

# Like the docs pages' policy (app/docs.py: only the app's own origin), stricter: these pages
# run no script at all, and their forms may post to this origin only.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;"
    "line-height:1.5;color:#1b1b1b}"
    "label{display:block;margin-top:1rem}"
    "input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}"
    "button{margin-top:1.5rem;padding:.5rem 1.25rem}"
    ".problem{border-left:4px solid #b00020;padding:.25rem 1rem;background:#fdf0f2}"
    ".meta{color:#555;font-size:.85rem}"
)


@dataclass(frozen=True)
class Field:
    """A form input: a hidden value or a new password."""

    name: str
    label: str = ""
    value: str = ""
    hidden: bool = False


@dataclass(frozen=True)
class Form:
    action: str
    button: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Problem:
    """What the API would answer as a problem document, for a page to show."""

    status: int
    code: str
    detail: str

    @classmethod
    def of(cls, status: int, code: str, detail: str | None = None) -> Problem:
        return cls(status, code, detail or CODE_DETAILS.get(code, HTTPStatus(status).phrase))


def _field(field: Field) -> str:
    name = escape(field.name)
    if field.hidden:
        return f'<input type="hidden" name="{name}" value="{escape(field.value)}">'
    return (
        f'<label for="{name}">{escape(field.label)}</label>'
        f'<input type="password" id="{name}" name="{name}" required '
        'autocomplete="new-password">'
    )


def _form(form: Form) -> str:
    fields = "".join(_field(f) for f in form.fields)
    return (
        f'<form method="post" action="{escape(form.action)}">{fields}'
        f'<button type="submit">{escape(form.button)}</button></form>'
    )


def _problem(problem: Problem) -> str:
    title = HTTPStatus(problem.status).phrase
    request_id = request_id_var.get()
    meta = f"{problem.status} {title} · code {problem.code}"
    if request_id:
        meta += f" · request id {request_id}"
    return (
        f'<div class="problem" role="alert"><p><strong>{escape(problem.detail)}</strong></p>'
        f'<p class="meta">{escape(meta)}</p></div>'
    )


def page(
    title: str,
    *paragraphs: str,
    form: Form | None = None,
    problem: Problem | None = None,
    status_code: int | None = None,
) -> HTMLResponse:
    """A whole page; its status is the problem's, else `status_code`, else 200."""
    body = [f"<h1>{escape(title)}</h1>"]
    if problem is not None:
        body.append(_problem(problem))
    body.extend(f"<p>{escape(text)}</p>" for text in paragraphs)
    if form is not None:
        body.append(_form(form))
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)} · Gatehouse</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )
    status = problem.status if problem is not None else status_code or 200
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})
