"""The service's own pages: ``/`` says what it is, which model answers and how to call it; ``/readme``
is the README, so the home page's section links work from source and from a built Bento alike;
``/model-card`` the served model's card; ``/docs`` the Swagger page and ``/docs.json`` the OpenAPI document it
reads. A Starlette app that service.py mounts with ``@bentoml.asgi_app`` at ``/``: BentoML gives mounted routes
precedence over its own index page and document.
"""

import functools
import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote

import bentoml
from markdown_it import MarkdownIt  # markdown-it-py, already installed with BentoML (through rich)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tweet_model.pyfunc import EXAMPLE_TWEETS
from tweet_sentiment.core.config import ROOT, settings
from tweet_sentiment.core.models import ServedModel

ROUTES = [
    ("POST", "/predict", {"tweet": EXAMPLE_TWEETS[0]}, "sentiment of one tweet"),
    ("POST", "/predict_batch", {"tweets": EXAMPLE_TWEETS}, "sentiment of up to 256 tweets, in order"),
    ("POST", "/explain", {"tweet": EXAMPLE_TWEETS[0]}, "why: the answer, and each word's effect on P(positive)"),
    (
        "POST",
        "/feedback",
        {"tweet": EXAMPLE_TWEETS[1], "predicted_label": "positive", "true_label": "negative"},
        f"report a wrong prediction (more than {settings().alert_threshold} within "
        f"{settings().alert_window_seconds:g} s sends an alert e-mail)",
    ),
    ("POST", "/status", {}, "the served model and the alert state"),
]
SECTIONS = [
    "The API",
    "Serving",
    "Brands and bad buzz",
    "Build, containerize, deploy",
    "Model lifecycle",
    "Monitoring and alerts",
    "Settings",
]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def home_page(models: dict[str, ServedModel], host: str) -> str:
    """The home page, with curl examples addressed to the host the browser used; ``models``: what a request may
    name, the served one first."""
    [served, *others] = models.values()
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
<p>Predicts whether an English tweet is positive or negative, with the probability; a French one through its
English translation, where the model is good enough at that (its answer's <code>model</code> ends with
<code>+fr</code>). Tweets in other languages are answered with a warning: the models are English-only.</p>
<p>Served model: <b>{html.escape(served.name)}</b> version <b>{html.escape(served.version)}</b>{alias},
a {html.escape(served.family)} model (BentoML tag <code>{html.escape(served.bento_tag)}</code>, MLflow run
<code>{html.escape(served.run_id)}</code>).</p>
{others_named(models) if others else ""}
<h2>Routes</h2><table>{rows}
<tr><td><code>GET /livez /readyz /metrics</code></td><td>liveness, readiness, Prometheus</td><td></td></tr>
</table>
<p><a href="/docs">API reference (Swagger)</a> · <a href="/docs.json">OpenAPI</a> ·
<a href="/model-card">the model's card</a> · {links}</p>
</body></html>"""


def others_named(models: dict[str, ServedModel]) -> str:
    """The models a request may name besides the served one, each with its card."""
    others = list(models.items())[1:]
    items = "".join(
        f"<li><code>{html.escape(spec)}</code>: {html.escape(model.label)}, a {html.escape(model.family)} model "
        f"(<a href='/model-card?model={quote(spec)}'>its card</a>)</li>"
        for spec, model in others
    )
    example = html.escape(json.dumps({"tweet": EXAMPLE_TWEETS[0], "model": others[0][0]}, ensure_ascii=False))
    return f"<p>A request may name another model (<code>{example}</code>):</p><ul>{items}</ul>"


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


# Swagger UI from the assets BentoML serves at /static_content, reading the service's OpenAPI document.
SWAGGER_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Tweet sentiment: API reference</title>
<link rel="stylesheet" href="/static_content/swagger-ui.css"></head><body><div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui", deepLinking: true})</script>
</body></html>"""


def pages(models: Callable[[], dict[str, ServedModel]], openapi: Callable[[], dict]) -> Starlette:
    """GET / (the home page), /readme, /model-card (the card of a model ``models()`` answers with now: the served
    one, the first, or the one ``?model=`` names), /docs (Swagger) and /docs.json (``openapi()``, made once)."""
    readme = readme_page()
    document = functools.cache(openapi)

    def home(request: Request) -> HTMLResponse:
        return HTMLResponse(home_page(models(), request.headers.get("host", "localhost:3000")))

    def card(request: Request) -> Response:
        answering = models()
        spec = request.query_params.get("model", next(iter(answering)))
        if spec not in answering:
            return JSONResponse(
                {"error": f"unknown model {spec!r}: this server answers with {', '.join(answering)}"}, 404
            )
        return HTMLResponse(card_page(answering[spec]))

    return Starlette(
        routes=[
            Route("/", home),
            Route("/readme", lambda _: HTMLResponse(readme)),
            Route("/model-card", card),
            Route("/docs", lambda _: HTMLResponse(SWAGGER_PAGE)),
            Route("/docs.json", lambda _: JSONResponse(document())),
        ]
    )


@functools.lru_cache(maxsize=4)
def card_page(served: ServedModel) -> str:
    """The model card its training run logged, which the BentoML import carries."""
    card = bentoml.models.get(served.bento_tag).info.metadata.get("model_card", "")
    return markdown_page(
        f"Model card: {served.label}",
        card or f"# {served.label}\n\nThis version was trained before model cards were written.",
    )
