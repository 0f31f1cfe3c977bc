//! The human-readable API page (`GET /docs`), rendered on the server from the OpenAPI document
//! of [`crate::openapi`].
//!
//! The page is one self-contained HTML file: an embedded stylesheet and nothing else (no
//! scripts, fonts or external references), so it works offline and on networks that block
//! CDNs, and the strict Content-Security-Policy `/docs` is served with can hold. It is rendered
//! from the same JSON that `/openapi.json` serves, rather than from the operations table, so the
//! two cannot disagree. Everything taken from the document is HTML-escaped: descriptions are
//! free text and some contain `<`, `&` and quotes.

use std::fmt::Write;

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

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes free text from the document and sets its `code spans` in `<code>`, the only
/// markup the descriptions use. An unpaired backtick stays as it is.
fn prose(s: &str) -> String {
    let escaped = escape(s);
    let parts: Vec<&str> = escaped.split('`').collect();
    let mut out = String::with_capacity(escaped.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        let is_code = i % 2 == 1;
        if is_code && i + 1 == parts.len() {
            // The opening backtick of this part was never closed.
            out.push('`');
            out.push_str(part);
        } else if is_code {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
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

/// Pretty JSON, escaped, with every schema reference turned into a link to its section.
fn json_pre(v: &Value) -> String {
    let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
    format!("<pre>{}</pre>", linkify_refs(&escape(&pretty)))
}

/// Rewrites `"#/components/schemas/Name"` (already escaped) into a link to that schema.
fn linkify_refs(escaped: &str) -> String {
    const PREFIX: &str = "&quot;#/components/schemas/";
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(&rest[..i]);
        let after = &rest[i + PREFIX.len()..];
        let end = after.find("&quot;").unwrap_or(after.len());
        let name = &after[..end];
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if plain {
            let _ = write!(
                out,
                "&quot;<a href=\"#{}\">#/components/schemas/{name}</a>",
                anchor("schema", name)
            );
            rest = &after[end..];
        } else {
            out.push_str(PREFIX);
            rest = after;
        }
    }
    out.push_str(rest);
    out
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
fn schema_block(out: &mut String, doc: &Value, schema: &Value, expand: bool) {
    let is_bare_ref = schema.as_object().is_some_and(|m| m.len() == 1);
    match resolve(doc, schema).filter(|_| is_bare_ref) {
        Some((name, target)) => {
            let _ = write!(
                out,
                "<p class=\"muted\">Schema <a href=\"#{}\"><code>{}</code></a></p>",
                anchor("schema", name),
                escape(name),
            );
            if expand {
                out.push_str(&json_pre(target));
            }
        }
        None => out.push_str(&json_pre(schema)),
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

fn method_badge(method: &str) -> String {
    format!(
        "<span class=\"method {m}\">{}</span>",
        escape(&method.to_ascii_uppercase()),
        m = escape(method)
    )
}

/// "HTTP Basic (…) or Bearer (…)", from the operation's security requirements.
fn authentication(doc: &Value, op: &Value) -> String {
    let Some(reqs) = op.get("security").and_then(Value::as_array) else {
        return "Not specified.".into();
    };
    if reqs.is_empty() {
        return "None: this endpoint is public.".into();
    }
    let schemes = &doc["components"]["securitySchemes"];
    let alternatives: Vec<String> = reqs
        .iter()
        .map(|req| {
            let names: Vec<String> = req
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            if names.is_empty() {
                return "none".into();
            }
            names
                .iter()
                .map(|n| {
                    let s = &schemes[n];
                    let label = match (text(s, "type"), text(s, "scheme")) {
                        ("http", "basic") => "HTTP Basic".to_string(),
                        ("http", "bearer") => "Bearer".to_string(),
                        _ => n.clone(),
                    };
                    let desc = text(s, "description");
                    if desc.is_empty() {
                        format!("<strong>{}</strong>", escape(&label))
                    } else {
                        format!("<strong>{}</strong> ({})", escape(&label), prose(desc))
                    }
                })
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect();
    alternatives.join(" <em>or</em> ")
}

fn parameters(out: &mut String, params: &[Value]) {
    out.push_str(
        "<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Required</th>\
         <th>Schema</th><th>Description</th></tr></thead><tbody>",
    );
    for p in params {
        let schema = serde_json::to_string(&p["schema"]).unwrap_or_default();
        let required = if p["required"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{required}</td><td><code>{}</code></td>\
             <td>{}</td></tr>",
            escape(text(p, "name")),
            escape(text(p, "in")),
            escape(&schema),
            prose(text(p, "description")),
        );
    }
    out.push_str("</tbody></table>");
}

fn request_body(out: &mut String, doc: &Value, body: &Value) {
    out.push_str("<h4>Request body</h4>");
    let Some(content) = body["content"].as_object() else {
        return;
    };
    let media: Vec<String> = content
        .keys()
        .map(|m| format!("<code>{}</code>", escape(m)))
        .collect();
    let _ = write!(out, "<p>Content type: {}</p>", media.join(", "));
    // The media types usually share one schema; show it once then.
    let first = content.values().next().map(|c| &c["schema"]);
    if content.values().all(|c| Some(&c["schema"]) == first) {
        if let Some(schema) = first {
            schema_block(out, doc, schema, true);
        }
    } else {
        for (m, c) in content {
            let _ = write!(out, "<h5><code>{}</code></h5>", escape(m));
            schema_block(out, doc, &c["schema"], true);
        }
    }
}

fn responses(out: &mut String, doc: &Value, responses: &Value) {
    out.push_str("<h4>Responses</h4>");
    let Some(map) = responses.as_object() else {
        return;
    };
    for (status, r) in map {
        let success = status.starts_with('2');
        let class = format!("s{}", status.chars().next().unwrap_or('0'));
        let _ = write!(
            out,
            "<div class=\"response\"><h5><span class=\"status {}\">{}</span> {}</h5>",
            escape(&class),
            escape(status),
            prose(text(r, "description"))
        );
        // Headers every response carries (by reference to a component) are described once, at
        // the top of the page; only an operation's own headers are listed here.
        if let Some(headers) = r["headers"].as_object() {
            let own: Vec<String> = headers
                .iter()
                .filter(|(_, h)| h.get("$ref").is_none())
                .map(|(name, h)| {
                    format!(
                        "<li><code>{}</code>: {}</li>",
                        escape(name),
                        prose(text(h, "description"))
                    )
                })
                .collect();
            if !own.is_empty() {
                let _ = write!(out, "<p>Headers:</p><ul>{}</ul>", own.concat());
            }
        }
        match r["content"].as_object() {
            Some(content) => {
                for (media, c) in content {
                    let _ = write!(out, "<p><code>{}</code></p>", escape(media));
                    schema_block(out, doc, &c["schema"], success);
                }
            }
            None => out.push_str("<p class=\"muted\">No body.</p>"),
        }
        out.push_str("</div>");
    }
}

fn operation(out: &mut String, doc: &Value, op: &Op<'_>) {
    let b = op.body;
    let _ = write!(
        out,
        "<article class=\"op\" id=\"{}\"><h3>{}<code>{}</code></h3><p><strong>{}</strong></p>",
        op.anchor(),
        method_badge(op.method),
        escape(op.path),
        prose(text(b, "summary")),
    );
    let description = text(b, "description");
    if !description.is_empty() {
        let _ = write!(out, "<p>{}</p>", prose(description));
    }
    let _ = write!(
        out,
        "<p><strong>Authentication:</strong> {}</p>",
        authentication(doc, b)
    );
    if let Some(params) = b["parameters"].as_array().filter(|p| !p.is_empty()) {
        parameters(out, params);
    }
    if let Some(body) = b.get("requestBody") {
        request_body(out, doc, body);
    }
    responses(out, doc, &b["responses"]);
    out.push_str("</article>");
}

/// Renders the whole page from an OpenAPI document.
pub fn render(doc: &Value) -> String {
    let ops = operations(doc);
    let tags = tags(doc, &ops);
    let info = &doc["info"];
    let title = format!("{} API {}", text(info, "title"), text(info, "version"));
    let mut out = String::with_capacity(128 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body><div class=\"wrap\">\
         <header><h1>{t}</h1><p>{}</p><p class=\"muted\">OpenAPI {}; the machine-readable \
         document is <a href=\"/openapi.json\"><code>/openapi.json</code></a>.</p>",
        prose(text(info, "description")),
        escape(text(doc, "openapi")),
        t = escape(&title),
    );
    if let Some(headers) = doc["components"]["headers"].as_object() {
        out.push_str("<p>Every response carries:</p><ul>");
        for (name, h) in headers {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                escape(name),
                prose(text(h, "description"))
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</header><nav><h2>Contents</h2><ul>");
    for (tag, _) in &tags {
        let _ = write!(
            out,
            "<li><a href=\"#{}\">{}</a><ul>",
            anchor("tag", tag),
            escape(tag)
        );
        for op in ops.iter().filter(|o| o.tag() == tag) {
            let _ = write!(
                out,
                "<li><a href=\"#{}\">{}<code>{}</code></a> <span class=\"muted\">{}</span></li>",
                op.anchor(),
                method_badge(op.method),
                escape(op.path),
                prose(text(op.body, "summary"))
            );
        }
        out.push_str("</ul></li>");
    }
    out.push_str("<li><a href=\"#schemas\">Schemas</a></li></ul></nav><main>");
    for (tag, description) in &tags {
        let _ = write!(
            out,
            "<section id=\"{}\"><h2>{}</h2>",
            anchor("tag", tag),
            escape(tag)
        );
        if !description.is_empty() {
            let _ = write!(out, "<p class=\"tagdesc\">{}</p>", prose(description));
        }
        for op in ops.iter().filter(|o| o.tag() == tag) {
            operation(&mut out, doc, op);
        }
        out.push_str("</section>");
    }
    out.push_str("<section id=\"schemas\"><h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = write!(
                out,
                "<article class=\"schema\" id=\"{}\"><h3><code>{}</code></h3>{}</article>",
                anchor("schema", name),
                escape(name),
                json_pre(schema)
            );
        }
    }
    out.push_str("</section></main></div></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
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
        assert_eq!(prose("a `<b>` c"), "a <code>&lt;b&gt;</code> c");
        assert_eq!(prose("`x` and `y"), "<code>x</code> and `y");
    }

    #[test]
    fn schema_references_become_links() {
        let html = json_pre(&json!({ "$ref": "#/components/schemas/TokenPair" }));
        assert!(html.contains("<a href=\"#schema-TokenPair\">#/components/schemas/TokenPair</a>"));
        // A name that could break out of the attribute is left as text.
        let odd = linkify_refs(&escape("\"#/components/schemas/a b\""));
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
