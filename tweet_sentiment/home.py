"""The service's own pages: ``/`` says what it is, which model answers and how to call it; ``/readme``
is the README, so the home page's section links work from source and from a built Bento alike.
BentoML's Swagger page moves to ``/docs``.
"""

import html
import json
import re

from markdown_it import MarkdownIt  # markdown-it-py, already installed with BentoML (through rich)

from tweet_model.pyfunc import EXAMPLE_TWEETS
from tweet_sentiment.config import ROOT
from tweet_sentiment.registry import ServedModel

ROUTES = [
    ("POST", "/predict", {"tweet": EXAMPLE_TWEETS[0]}, "sentiment of one tweet"),
    ("POST", "/predict_batch", {"tweets": EXAMPLE_TWEETS}, "sentiment of up to 256 tweets, in order"),
    (
        "POST",
        "/feedback",
        {"tweet": EXAMPLE_TWEETS[1], "predicted_label": "positive", "true_label": "negative"},
        "report a wrong prediction (more than 3 in 3 minutes sends an alert e-mail)",
    ),
    ("POST", "/status", {}, "the served model and the alert state"),
]
SECTIONS = ["The API", "Serving", "Build, containerize, deploy", "Model lifecycle", "Monitoring and alerts", "Settings"]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def home_page(served: ServedModel, host: str) -> str:
    """The home page, with curl examples addressed to the host the browser used."""
    rows = "".join(
        f"<tr><td><code>{method} {route}</code></td><td>{what}</td><td><pre>curl -s -X {method} "
        f"http://{html.escape(host)}{route} -H 'content-type: application/json' \\\n"
        f"     -d '{html.escape(json.dumps(body, ensure_ascii=False))}'</pre></td></tr>"
        for method, route, body, what in ROUTES
    )
    links = " · ".join(f"<a href='/readme#{_slug(s)}'>{s}</a>" for s in SECTIONS)
    alias = f" (MLflow alias <code>{html.escape(served.alias)}</code>)" if served.alias else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Tweet sentiment</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}} td{{vertical-align:top;
padding:6px 10px;border-bottom:1px solid #ddd}} pre{{margin:0;white-space:pre-wrap}}</style></head><body>
<h1>Tweet sentiment</h1>
<p>Predicts whether an English tweet is positive or negative, with the probability. Tweets in other
languages are answered with a warning: the models are English-only.</p>
<p>Served model: <b>{html.escape(served.name)}</b> version <b>{html.escape(served.version)}</b>{alias},
a {html.escape(served.family)} model (BentoML tag <code>{html.escape(served.bento_tag)}</code>, MLflow run
<code>{html.escape(served.run_id)}</code>).</p>
<h2>Routes</h2><table>{rows}
<tr><td><code>GET /livez /readyz /metrics</code></td><td>liveness, readiness, Prometheus</td><td></td></tr>
</table>
<p><a href="/docs">API reference (Swagger)</a> · <a href="/docs.json">OpenAPI</a> ·
<a href="/model-card">the model's card</a> · {links}</p>
</body></html>"""


def readme_page() -> str:
    """README.md as HTML, headings with the same anchors as on GitHub."""
    path = ROOT / "README.md"
    if not path.is_file():
        return "<p>README.md is not packed with this service.</p>"
    return markdown_page("Tweet sentiment: README", path.read_text(encoding="utf-8"))


def markdown_page(title: str, markdown: str) -> str:
    """Markdown as an HTML page, headings anchored as on GitHub."""
    body = MarkdownIt("commonmark").enable("table").render(markdown)

    def anchored(heading: re.Match) -> str:
        level, title = heading[1], heading[2]
        return f"<h{level} id='{_slug(re.sub('<[^>]+>', '', title))}'>{title}</h{level}>"

    body = re.sub(r"<h([1-3])>(.*?)</h\1>", anchored, body)
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


class Pages:
    """ASGI middleware: GET / is the home page, GET /readme the README, GET /model-card the served model's card,
    GET /docs BentoML's Swagger page."""

    PATHS = ("/", "/readme", "/model-card", "/docs")

    def __init__(self, app, served: ServedModel, model_card: str) -> None:
        self.app, self.served, self.readme = app, served, readme_page()
        card = model_card or f"# {served.label}\n\nThis version was trained before model cards were written."
        self.card = markdown_page(f"Model card: {served.label}", card)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in self.PATHS:
            return await self.app(scope, receive, send)
        if scope["path"] == "/docs":
            return await self.app({**scope, "path": "/", "raw_path": b"/"}, receive, send)
        host = dict(scope["headers"]).get(b"host", b"localhost:3000").decode("latin-1")
        if scope["path"] == "/":
            page = home_page(self.served, host)
        else:
            page = self.card if scope["path"] == "/model-card" else self.readme
        body = page.encode()
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
