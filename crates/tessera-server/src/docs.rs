//! The human-readable API page (`GET /docs`), rendered on the server from the OpenAPI document
//! of [`crate::openapi`].
//!
//! The page is one self-contained HTML file: an embedded stylesheet and nothing else (no
//! scripts, fonts or external references), so it works offline and on networks that block
//! CDNs, and the strict Content-Security-Policy `/docs` is served with can hold. It is rendered
//! from the same JSON that `/openapi.json` serves, rather than from the operations table, so the
//! two cannot disagree.
//!
//! The markup is a `maud` template (`html!`, checked at compile time), which escapes every
//! value it is given unless it is wrapped in `PreEscaped`; only the stylesheet constant is.
//! Document text therefore cannot inject markup: descriptions are free text and some contain
//! `<`, `&` and quotes.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

/// Path item keys that are operations, in the order the page lists them.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The stylesheet. Kept small and plain; `prefers-color-scheme` spares dark-mode readers.
const STYLE: &str = "
:root { --fg: #1d2125; --muted: #5a6470; --bg: #fff; --panel: #f5f7f9; --line: #dde2e7;
        --link: #0b5cad; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e4e7eb; --muted: #9aa5b1; --bg: #15181b; --panel: #1e2226; --line: #2f353b;
          --link: #6cb2ff; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', sans-serif;
       color: var(--fg); background: var(--bg); }
.wrap { max-width: 980px; margin: 0 auto; padding: 1.5rem; }
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
      padding: .75rem; overflow: auto; max-height: 32rem; }
h1 { margin: 0 0 .25rem; }
h2 { border-bottom: 2px solid var(--line); padding-bottom: .25rem; margin-top: 2.5rem; }
h3 { margin: 0 0 .5rem; font-size: 1.05rem; word-break: break-all; }
h4 { margin: 1rem 0 .25rem; font-size: .95rem; }
h5 { margin: .5rem 0 .25rem; font-size: .9rem; font-weight: 600; }
.muted, .tagdesc { color: var(--muted); }
nav ul { list-style: none; padding-left: 1rem; margin: .25rem 0; }
nav > ul { padding-left: 0; }
nav li { margin: .15rem 0; }
.op, .schema { border: 1px solid var(--line); border-radius: 8px; padding: 1rem;
               margin: 1rem 0; }
.method { display: inline-block; min-width: 4.2em; text-align: center; border-radius: 4px;
          padding: 0 .4em; margin-right: .4em; color: #fff; font: 700 12px/1.7 ui-monospace,
          monospace; vertical-align: middle; }
.get { background: #1f7a44; } .post { background: #0b5cad; } .put { background: #a15c00; }
.patch { background: #6b4fbb; } .delete { background: #b3261e; }
.status { display: inline-block; min-width: 2.8em; text-align: center; border-radius: 4px;
          padding: 0 .3em; margin-right: .4em; font-family: ui-monospace, monospace;
          background: var(--panel); border: 1px solid var(--line); }
.s2 { border-color: #1f7a44; } .s4 { border-color: #a15c00; } .s5 { border-color: #b3261e; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid var(--line);
         padding: .3rem .5rem .3rem 0; }
td code { word-break: break-all; }
";

/// Free text from the document, with its `code spans` set in `<code>`, the only markup the
/// descriptions use. The text is escaped by the template; an unpaired backtick stays as it is.
fn prose(s: &str) -> Markup {
    let parts: Vec<&str> = s.split('`').collect();
    let last = parts.len() - 1;
    html! {
        @for (i, part) in parts.iter().enumerate() {
            @if i % 2 == 0 {
                (part)
            } @else if i == last {
                // The opening backtick of this part was never closed.
                "`" (part)
            } @else {
                code { (part) }
            }
        }
    }
}

/// A fragment identifier made only of characters that need no escaping anywhere.
fn anchor(prefix: &str, s: &str) -> String {
    let tail: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{tail}")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Pretty JSON with every schema reference turned into a link to its section.
fn json_pre(v: &Value) -> Markup {
    let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre { (linked_refs(&pretty)) } }
}

/// JSON text split at its schema references: each piece is text, then optionally the name of
/// the schema that a `"#/components/schemas/Name"` right after it points at (that string's
/// closing quote starts the next piece). A name with any character that is not plain is left
/// as text rather than made into a link.
fn ref_pieces(json: &str) -> Vec<(&str, Option<&str>)> {
    const PREFIX: &str = "\"#/components/schemas/";
    let mut pieces = Vec::new();
    let mut rest = json;
    let mut text_start = 0;
    while let Some(i) = rest[text_start..].find(PREFIX) {
        let at = text_start + i;
        let after = &rest[at + PREFIX.len()..];
        let end = after.find('"').unwrap_or(after.len());
        let name = &after[..end];
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if plain {
            pieces.push((&rest[..at], Some(name)));
            rest = &after[end..];
            text_start = 0;
        } else {
            text_start = at + PREFIX.len();
        }
    }
    pieces.push((rest, None));
    pieces
}

/// [`ref_pieces`] as markup: `"#/components/schemas/Name"` becomes `"` and a link.
fn linked_refs(json: &str) -> Markup {
    html! {
        @for (text, name) in ref_pieces(json) {
            (text)
            @if let Some(name) = name {
                "\"" a href={ "#" (anchor("schema", name)) } { "#/components/schemas/" (name) }
            }
        }
    }
}

/// The component a local `$ref` points at, with its name.
fn resolve<'a>(doc: &'a Value, schema: &Value) -> Option<(&'a str, &'a Value)> {
    let r = schema.get("$ref")?.as_str()?;
    let name = r.strip_prefix("#/components/schemas/")?;
    let (key, target) = doc["components"]["schemas"]
        .as_object()?
        .get_key_value(name)?;
    Some((key.as_str(), target))
}

/// A schema: a bare reference is shown as a link to the named schema and, when `expand`,
/// also resolved in place. Error bodies are not expanded: they are the same few schemas
/// everywhere, and repeating them on every operation buries what differs.
fn schema_block(doc: &Value, schema: &Value, expand: bool) -> Markup {
    let is_bare_ref = schema.as_object().is_some_and(|m| m.len() == 1);
    html! {
        @match resolve(doc, schema).filter(|_| is_bare_ref) {
            Some((name, target)) => {
                p class="muted" {
                    "Schema " a href={ "#" (anchor("schema", name)) } { code { (name) } }
                }
                @if expand {
                    (json_pre(target))
                }
            }
            None => (json_pre(schema)),
        }
    }
}

/// One operation found in the document.
struct Op<'a> {
    path: &'a str,
    method: &'a str,
    body: &'a Value,
}

impl Op<'_> {
    fn tag(&self) -> &str {
        self.body["tags"]
            .get(0)
            .and_then(Value::as_str)
            .unwrap_or("Other")
    }

    fn anchor(&self) -> String {
        match self.body.get("operationId").and_then(Value::as_str) {
            Some(id) => anchor("op", id),
            None => anchor("op", &format!("{}-{}", self.method, self.path)),
        }
    }
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(body) = item.get(method) {
                    ops.push(Op { path, method, body });
                }
            }
        }
    }
    ops
}

/// The document's tags in its order, then any tag only operations use.
fn tags<'a>(doc: &'a Value, ops: &[Op<'a>]) -> Vec<(String, &'a str)> {
    let mut tags: Vec<(String, &str)> = doc["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| (text(t, "name").to_string(), text(t, "description")))
                .collect()
        })
        .unwrap_or_default();
    for op in ops {
        if !tags.iter().any(|(t, _)| t == op.tag()) {
            tags.push((op.tag().to_string(), ""));
        }
    }
    tags
}

fn method_badge(method: &str) -> Markup {
    html! {
        span class={ "method " (method) } { (method.to_ascii_uppercase()) }
    }
}

/// "HTTP Basic (…) or Bearer (…)", from the operation's security requirements.
fn authentication(doc: &Value, op: &Value) -> Markup {
    let Some(reqs) = op.get("security").and_then(Value::as_array) else {
        return html! { "Not specified." };
    };
    if reqs.is_empty() {
        return html! { "None: this endpoint is public." };
    }
    let schemes = &doc["components"]["securitySchemes"];
    html! {
        @for (i, req) in reqs.iter().enumerate() {
            @if i > 0 {
                " " em { "or" } " "
            }
            @let names: Vec<&String> =
                req.as_object().map(|m| m.keys().collect()).unwrap_or_default();
            @if names.is_empty() {
                "none"
            }
            @for (j, name) in names.into_iter().enumerate() {
                @if j > 0 {
                    " and "
                }
                (security_scheme(&schemes[name], name))
            }
        }
    }
}

/// One security scheme by its label, with the document's description of it.
fn security_scheme(scheme: &Value, name: &str) -> Markup {
    let label = match (text(scheme, "type"), text(scheme, "scheme")) {
        ("http", "basic") => "HTTP Basic",
        ("http", "bearer") => "Bearer",
        _ => name,
    };
    let description = text(scheme, "description");
    html! {
        strong { (label) }
        @if !description.is_empty() {
            " (" (prose(description)) ")"
        }
    }
}

fn parameters(params: &[Value]) -> Markup {
    html! {
        h4 { "Parameters" }
        table {
            thead {
                tr {
                    th { "Name" } th { "In" } th { "Required" } th { "Schema" }
                    th { "Description" }
                }
            }
            tbody {
                @for p in params {
                    tr {
                        td { code { (text(p, "name")) } }
                        td { (text(p, "in")) }
                        td { @if p["required"].as_bool() == Some(true) { "yes" } @else { "no" } }
                        td { code { (serde_json::to_string(&p["schema"]).unwrap_or_default()) } }
                        td { (prose(text(p, "description"))) }
                    }
                }
            }
        }
    }
}

fn request_body(doc: &Value, body: &Value) -> Markup {
    let content = body["content"].as_object();
    // The media types usually share one schema; show it once then.
    let shared = content.and_then(|content| {
        let first = content.values().next().map(|c| &c["schema"]);
        first.filter(|&f| content.values().all(|c| &c["schema"] == f))
    });
    html! {
        h4 { "Request body" }
        @if let Some(content) = content {
            p {
                "Content type: "
                @for (i, media) in content.keys().enumerate() {
                    @if i > 0 { ", " }
                    code { (media) }
                }
            }
            @if let Some(schema) = shared {
                (schema_block(doc, schema, true))
            } @else {
                @for (media, c) in content {
                    h5 { code { (media) } }
                    (schema_block(doc, &c["schema"], true))
                }
            }
        }
    }
}

fn responses(doc: &Value, responses: &Value) -> Markup {
    html! {
        h4 { "Responses" }
        @if let Some(map) = responses.as_object() {
            @for (status, r) in map {
                (response(doc, status, r))
            }
        }
    }
}

fn response(doc: &Value, status: &str, r: &Value) -> Markup {
    let success = status.starts_with('2');
    let class = format!("s{}", status.chars().next().unwrap_or('0'));
    // Headers every response carries (by reference to a component) are described once, at
    // the top of the page; only an operation's own headers are listed here.
    let own_headers: Vec<(&String, &Value)> = r["headers"]
        .as_object()
        .map(|h| h.iter().filter(|(_, h)| h.get("$ref").is_none()).collect())
        .unwrap_or_default();
    html! {
        div class="response" {
            h5 {
                span class={ "status " (class) } { (status) }
                " " (prose(text(r, "description")))
            }
            @if !own_headers.is_empty() {
                p { "Headers:" }
                ul {
                    @for (name, h) in own_headers {
                        li { code { (name) } ": " (prose(text(h, "description"))) }
                    }
                }
            }
            @match r["content"].as_object() {
                Some(content) => {
                    @for (media, c) in content {
                        p { code { (media) } }
                        (schema_block(doc, &c["schema"], success))
                    }
                }
                None => p class="muted" { "No body." },
            }
        }
    }
}

fn operation(doc: &Value, op: &Op<'_>) -> Markup {
    let b = op.body;
    let description = text(b, "description");
    html! {
        article class="op" id=(op.anchor()) {
            h3 { (method_badge(op.method)) code { (op.path) } }
            p { strong { (prose(text(b, "summary"))) } }
            @if !description.is_empty() {
                p { (prose(description)) }
            }
            p { strong { "Authentication:" } " " (authentication(doc, b)) }
            @if let Some(params) = b["parameters"].as_array().filter(|p| !p.is_empty()) {
                (parameters(params))
            }
            @if let Some(body) = b.get("requestBody") {
                (request_body(doc, body))
            }
            (responses(doc, &b["responses"]))
        }
    }
}

/// Renders the whole page from an OpenAPI document.
pub fn render(doc: &Value) -> String {
    let ops = operations(doc);
    let tags = tags(doc, &ops);
    let info = &doc["info"];
    let title = format!("{} API {}", text(info, "title"), text(info, "version"));
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // A constant of this file, not document text: nothing to escape.
                style { (PreEscaped(STYLE)) }
            }
            body {
                div class="wrap" {
                    header {
                        h1 { (title) }
                        p { (prose(text(info, "description"))) }
                        p class="muted" {
                            "OpenAPI " (text(doc, "openapi"))
                            "; the machine-readable document is "
                            a href="/openapi.json" { code { "/openapi.json" } }
                            "."
                        }
                        @if let Some(headers) = doc["components"]["headers"].as_object() {
                            p { "Every response carries:" }
                            ul {
                                @for (name, h) in headers {
                                    li { code { (name) } ": " (prose(text(h, "description"))) }
                                }
                            }
                        }
                    }
                    nav {
                        h2 { "Contents" }
                        ul {
                            @for (tag, _) in &tags {
                                li {
                                    a href={ "#" (anchor("tag", tag)) } { (tag) }
                                    ul {
                                        @for op in ops.iter().filter(|o| o.tag() == tag) {
                                            li {
                                                a href={ "#" (op.anchor()) } {
                                                    (method_badge(op.method)) code { (op.path) }
                                                }
                                                " "
                                                span class="muted" {
                                                    (prose(text(op.body, "summary")))
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            li { a href="#schemas" { "Schemas" } }
                        }
                    }
                    main {
                        @for (tag, description) in &tags {
                            section id=(anchor("tag", tag)) {
                                h2 { (tag) }
                                @if !description.is_empty() {
                                    p class="tagdesc" { (prose(description)) }
                                }
                                @for op in ops.iter().filter(|o| o.tag() == tag) {
                                    (operation(doc, op))
                                }
                            }
                        }
                        section id="schemas" {
                            h2 { "Schemas" }
                            @if let Some(schemas) = doc["components"]["schemas"].as_object() {
                                @for (name, schema) in schemas {
                                    article class="schema" id=(anchor("schema", name)) {
                                        h3 { code { (name) } }
                                        (json_pre(schema))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The template's escaping of a value, as the page shows it.
    fn escape(s: &str) -> String {
        html! { (s) }.into_string()
    }

    /// Markup characters are escaped in text and in (double-quoted) attribute values alike.
    /// A single quote needs no escaping in either, and the template leaves it as it is.
    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;'&amp;'&lt;/a&gt;"
        );
        let name = r#"x"><script>"#;
        assert_eq!(
            method_badge(name).into_string(),
            "<span class=\"method x&quot;&gt;&lt;script&gt;\">X&quot;&gt;&lt;SCRIPT&gt;</span>"
        );
    }

    /// Every place the page shows a description: none of them lets `<script>` through.
    #[test]
    fn descriptions_with_script_are_escaped() {
        const EVIL: &str = "<script>alert(1)</script>";
        let doc = json!({
            "openapi": "3.1.0",
            "info": { "title": "T", "version": "1", "description": EVIL },
            "tags": [{ "name": "t", "description": EVIL }],
            "paths": { "/p": { "post": {
                "operationId": "op",
                "tags": ["t"],
                "summary": EVIL,
                "description": format!("{EVIL} and `{EVIL}`"),
                "security": [{ "basic": [] }],
                "parameters": [{ "name": "q", "in": "query", "description": EVIL,
                                 "schema": { "type": "string", "description": EVIL } }],
                "requestBody": { "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/S" } } } },
                "responses": { "200": { "description": EVIL,
                    "headers": { "X-Own": { "description": EVIL } },
                    "content": { "application/json": {
                        "schema": { "type": "string", "description": EVIL } } } } },
            } } },
            "components": {
                "schemas": { "S": { "type": "object", "description": EVIL } },
                "headers": { "X-Request-Id": { "description": EVIL } },
                "securitySchemes": { "basic": {
                    "type": "http", "scheme": "basic", "description": EVIL } },
            },
        });
        let html = render(&doc);
        assert!(!html.contains("<script"), "{html}");
        // Info, tag, summary (contents and operation), description (twice), security scheme,
        // parameter, common header, response, own header: 11 in prose; the parameter's
        // schema, the response schema, and `S` expanded in the request body and in its own
        // section: 4 in JSON.
        assert_eq!(
            html.matches("&lt;script&gt;alert(1)&lt;/script&gt;")
                .count(),
            15
        );
        assert!(html.contains("<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>"));
    }

    #[test]
    fn document_text_is_escaped() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": { "title": "<b>T</b>", "version": "1", "description": "a & b" },
            "tags": [{ "name": "<x>", "description": "\"quoted\"" }],
            "paths": { "/p/{id}": { "get": {
                "operationId": "a\"><script>",
                "summary": "<script>alert(1)</script>",
                "tags": ["<x>"],
                "security": [],
                "responses": { "200": { "description": "<i>ok</i>",
                    "content": { "application/json": { "schema": { "const": "</pre>" } } } } },
            } } },
        });
        let html = render(&doc);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>T</b>") && !html.contains("<i>ok</i>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;/pre&gt;"));
        assert!(html.contains("/p/{id}"));
        assert!(html.contains("id=\"op-a---script-\""));
    }

    #[test]
    fn code_spans_are_set_after_escaping() {
        assert_eq!(
            prose("a `<b>` c").into_string(),
            "a <code>&lt;b&gt;</code> c"
        );
        assert_eq!(prose("`x` and `y").into_string(), "<code>x</code> and `y");
    }

    #[test]
    fn schema_references_become_links() {
        let html = json_pre(&json!({ "$ref": "#/components/schemas/TokenPair" })).into_string();
        assert!(html.contains("<a href=\"#schema-TokenPair\">#/components/schemas/TokenPair</a>"));
        // A name that could break out of the attribute is left as text.
        let odd = linked_refs("\"#/components/schemas/a b\"").into_string();
        assert!(!odd.contains("<a "));
    }

    #[test]
    fn real_page_is_self_contained_and_complete() {
        let doc = crate::openapi::document();
        let html = render(&doc);
        for banned in [
            "<script", "<link", "src=", "@import", "url(", "http://", "https://",
        ] {
            assert!(!html.contains(banned), "page contains {banned}");
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(html.contains(&escape(path)), "{path} missing");
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap();
                assert!(html.contains(&format!("id=\"{}\"", anchor("op", id))));
            }
        }
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(html.contains(&format!("id=\"{}\"", anchor("schema", name))));
        }
    }
}
