//! The web view: server-rendered HTML and one stylesheet, no JavaScript. `/` shows the
//! latest cosigned checkpoint (who cosigned it), and the most recent entries; `/search?q=`
//! takes `crate@version` and shows every entry for it (verdict, variant, signers,
//! dissenters, silent members, misbehaviour, a link to download its proof), or `crate` and
//! lists its logged versions; both from the verifiable index at the latest cosigned
//! checkpoint, so "nothing" is shown as proven absent at that size.
//!
//! Bounds: the index shows the last [`RECENT`] entries.

use hyper::StatusCode;

use super::Answer;
use crate::node::Shared;
use crate::protocol::{LogEntry, Verdict};

/// Entries on the index page.
const RECENT: u64 = 20;

pub(super) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}\
code{font-size:.85rem;word-break:break-all}.reproduced{color:#176b2c;font-weight:bold}\
.failed,.notreproduced{color:#a3231f;font-weight:bold}form{margin:1rem 0}input[type=text]{width:20rem;padding:.3rem}\
pre{white-space:pre-wrap;word-break:break-all;font-size:.85rem}";

/// HTML-escapes `s`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Answer {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
<meta name=\"viewport\" content=\"width=device-width\"><link rel=\"stylesheet\" href=\"/style.css\"></head>\
<body><h1><a href=\"/\">Synchronicity log</a>: {}</h1>\
<form action=\"/search\" method=\"get\"><label>Crate or crate@version \
<input type=\"text\" name=\"q\" id=\"q\" required></label> <button type=\"submit\">Search</button></form>{body}</body></html>",
        esc(title),
        esc(title)
    );
    Answer::ok("text/html; charset=utf-8", "no-cache", html.into_bytes())
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Reproduced => "reproduced",
        Verdict::Failed => "failed",
        Verdict::NotReproduced => "notreproduced",
    }
}

fn names(shared: &Shared, members: impl Iterator<Item = usize>) -> String {
    let m = shared.committee.members();
    members
        .map(|i| {
            m.get(i)
                .map(|x| esc(&x.name))
                .unwrap_or_else(|| format!("#{i}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn attesters(shared: &Shared, e: &LogEntry) -> Vec<usize> {
    crate::crypto::ThresholdSignature::from_bytes(&e.attestation, shared.committee.len())
        .map(|s| s.signers.iter().collect())
        .unwrap_or_default()
}

fn entry_row(shared: &Shared, index: u64, e: &LogEntry) -> String {
    let signers = attesters(shared, e);
    let label = e.request.variant_label();
    format!(
        "<tr><td>{index}</td><td><a href=\"/search?q={spec}\">{spec}</a>{variant}</td>\
<td class=\"{class}\">{verdict:?}</td><td>{n} ({names})</td></tr>",
        spec = esc(&e.request.spec()),
        variant = if label.is_empty() {
            String::new()
        } else {
            format!("<br><small>{}</small>", esc(&label))
        },
        class = verdict_class(e.verdict),
        verdict = e.verdict,
        n = signers.len(),
        names = names(shared, signers.into_iter()),
    )
}

/// `/`.
pub(super) fn index(shared: &Shared) -> Answer {
    let store = &shared.store;
    let mut body = String::new();
    match store.latest_checkpoint() {
        Ok(Some(note)) => {
            let cp = shared.verify_checkpoint(&note);
            let (size, cosigners) = match &cp {
                Ok(c) => (
                    c.checkpoint().size,
                    names(shared, c.signature().signers.iter()),
                ),
                Err(_) => (0, String::new()),
            };
            body.push_str(&format!(
                "<h2>Latest checkpoint</h2><p>Size <b id=\"size\">{size}</b>, cosigned by {cosigners}. \
<a href=\"/checkpoint\">Note</a> (C2SP signed note: committee threshold line, members' Ed25519 lines, witnesses).</p><pre>{}</pre>",
                esc(&note)
            ));
        }
        Ok(None) => body.push_str("<p>No cosigned checkpoint yet.</p>"),
        Err(e) => body.push_str(&format!("<p>Store error: {}</p>", esc(&e.to_string()))),
    }
    if let Some(b) = shared.backlog_progress() {
        body.push_str(&format!(
            "<h2>Backlog</h2><p id=\"backlog\"><b>{}</b> of {} decided ({} reproduced, {} not reproduced, {} failed), {} being built, {} waiting, {} unbuildable.</p>",
            b.decided(),
            b.total,
            b.reproduced,
            b.not_reproduced,
            b.failed,
            b.ordered,
            b.waiting,
            b.unbuildable
        ));
    }
    let size = store.size().unwrap_or(0);
    body.push_str("<h2>Recent entries</h2><table><tr><th>#</th><th>crate</th><th>verdict</th><th>signers</th></tr>");
    for i in (size.saturating_sub(RECENT)..size).rev() {
        if let Ok(bytes) = store.entry(i)
            && let Ok(e) = LogEntry::decode(&bytes)
        {
            body.push_str(&entry_row(shared, i, &e));
        }
    }
    body.push_str("</table>");
    page("overview", &body)
}

fn query_value(query: &str) -> Option<String> {
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("q=") {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 3 <= b.len() {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                    out.push(u8::from_str_radix(h, 16).ok()?);
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            return String::from_utf8(out).ok().map(|s| s.trim().to_string());
        }
    }
    None
}

fn valid_query(q: &str) -> bool {
    let (name, version) = q.split_once('@').unwrap_or((q, ""));
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && version.len() <= 64
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.+".contains(&b))
}

/// For an entry with dissenters or a failure: this member's build log, and the diff report
/// (`synchronicity diff`) when the operator made one, or how to make it.
fn why_rows(shared: &Shared, e: &LogEntry) -> String {
    let hex_id = hex::encode(e.request.id());
    let mut out = String::new();
    let Some(dir) = shared.node_dir.as_deref() else {
        return out;
    };
    // Whether the files are there (their size and kind are checked when served).
    let present = |p: std::path::PathBuf| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    if present(dir.join("build-logs").join(format!("{hex_id}.log"))) {
        out.push_str(&format!(
            "<tr><th>build log</th><td><a href=\"/build-log/{hex_id}\">this member's build log</a></td></tr>"
        ));
    }
    if !e.dissenters.is_empty() {
        if present(dir.join("diffs").join(&hex_id).join("diff.html")) {
            out.push_str(&format!(
                "<tr><th>why not reproduced</th><td><a id=\"diff\" href=\"/diff/{hex_id}\">diffoscope report</a> (<a href=\"/diff/{hex_id}.txt\">text</a>)</td></tr>"
            ));
        } else {
            out.push_str(&format!(
                "<tr><th>why not reproduced</th><td>no report yet: <code>synchronicity diff {hex_id} --out NODE_DIR/diffs/{hex_id}</code></td></tr>"
            ));
        }
    }
    out
}

fn detail(shared: &Shared, index: u64, e: &LogEntry) -> String {
    let signers = attesters(shared, e);
    let dissent = if e.dissenters.is_empty() {
        "none".to_string()
    } else {
        e.dissenters
            .iter()
            .map(|d| {
                format!(
                    "{} (<code>{}</code>)",
                    names(shared, std::iter::once(d.member as usize)),
                    hex::encode(&d.digest)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let misbehaviour = if e.misbehaviour.is_empty() {
        "none".to_string()
    } else {
        e.misbehaviour
            .iter()
            .map(|(m, what)| format!("{}: {what:?}", names(shared, std::iter::once(*m as usize))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let id = hex::encode(e.request.id());
    format!(
        "<h2>Entry {index}: {spec} <span class=\"{class}\">{verdict:?}</span></h2><table>\
<tr><th>variant</th><td>{variant}</td></tr>\
<tr><th>request id</th><td><code>{id}</code></td></tr>\
<tr><th>source sha256</th><td><code>{src}</code></td></tr>\
<tr><th>signers</th><td class=\"signers\">{n} of {total} ({names}), threshold {t}</td></tr>\
<tr><th>dissenters</th><td>{dissent}</td></tr>\
<tr><th>silent</th><td>{silent}</td></tr>\
<tr><th>misbehaviour</th><td>{misbehaviour}</td></tr>\
<tr><th>digest</th><td><code>{digest}</code></td></tr>\
<tr><th>proof</th><td><a href=\"/lookup/{id}\">download the proof</a> (verify with <code>synchronicity verify</code>)</td></tr>{why}</table>",
        why = why_rows(shared, e),
        spec = esc(&e.request.spec()),
        class = verdict_class(e.verdict),
        verdict = e.verdict,
        variant = esc(&if e.request.variant_label().is_empty() {
            "default".into()
        } else {
            e.request.variant_label()
        }),
        src = hex::encode(&e.request.source_sha256),
        n = signers.len(),
        total = shared.committee.len(),
        names = names(shared, signers.into_iter()),
        t = shared.committee.threshold(),
        silent = if e.silent.is_empty() {
            "none".into()
        } else {
            names(shared, e.silent.iter().map(|&s| s as usize))
        },
        digest = hex::encode(&e.digest),
    )
}

/// `/search?q=crate` or `q=crate@version`.
pub(super) fn search(shared: &Shared, query: &str) -> Answer {
    let Some(q) = query_value(query) else {
        return Answer::text(
            StatusCode::BAD_REQUEST,
            "search: ?q=crate or ?q=crate@version",
        );
    };
    if !valid_query(&q) {
        return Answer::text(
            StatusCode::BAD_REQUEST,
            format!("search: {q:?} is not a crate name or crate@version"),
        );
    }
    let store = &shared.store;
    // Answers from the index of the latest cosigned checkpoint: every variant, or proven
    // absent, at that size (what `lookup` proves to a client).
    let snap = shared
        .latest_cosigned()
        .ok()
        .flatten()
        .and_then(|cp| store.index_snapshot(cp.checkpoint().size).ok());
    let Some(snap) = snap else {
        return page(
            &q,
            "<p>No cosigned checkpoint with an index yet: nothing can be proven.</p>",
        );
    };
    let size = snap.size();
    let mut body = String::new();
    if q.contains('@') {
        let entries = match snap.variants(&q) {
            Ok(v) => v.entries,
            Err(e) => return page(&q, &format!("<p>Store error: {}</p>", esc(&e.to_string()))),
        };
        let found: Vec<(u64, LogEntry)> = entries
            .into_iter()
            .filter_map(|(i, b)| LogEntry::decode(&b).ok().map(|e| (i, e)))
            .collect();
        if found.is_empty() {
            body.push_str(&format!(
                "<p>No entry for <b>{}</b>: <b>proven absent</b> at size <b id=\"proven-size\">{size}</b> (the index of the cosigned checkpoint of that size holds no key for it).</p>",
                esc(&q)
            ));
        } else {
            let default =
                crate::log::choose_default(&found, Some(&shared.committee.build().target));
            body.push_str(&format!(
                "<p>{} entr{} for <b>{}</b>, every variant and attempt, proven complete at size <b id=\"proven-size\">{size}</b>; the default variant: {}.</p>",
                found.len(),
                if found.len() == 1 { "y" } else { "ies" },
                esc(&q),
                default.map_or("none (ask by request id)".into(), |i| format!("entry {i}"))
            ));
        }
        for (i, e) in &found {
            body.push_str(&detail(shared, *i, e));
        }
    } else {
        let versions = match snap.versions(&q) {
            Ok((v, _)) => v,
            Err(e) => return page(&q, &format!("<p>Store error: {}</p>", esc(&e.to_string()))),
        };
        if versions.is_empty() {
            body.push_str(&format!(
                "<p>No version of <b>{}</b> logged: <b>proven absent</b> at size <b id=\"proven-size\">{size}</b>.</p>",
                esc(&q)
            ));
        } else {
            body.push_str(&format!(
                "<p>Versions of <b>{}</b> in the log (proven complete at size <b id=\"proven-size\">{size}</b>):</p><ul>",
                esc(&q)
            ));
            for v in &versions {
                let spec = format!("{q}@{v}");
                body.push_str(&format!(
                    "<li><a href=\"/search?q={}\">{}</a></li>",
                    esc(&spec.replace('@', "%40").replace('+', "%2B")),
                    esc(&spec)
                ));
            }
            body.push_str("</ul>");
        }
    }
    page(&q, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded_checked_and_escaped() {
        assert_eq!(
            query_value("q=itoa%401.0.15").as_deref(),
            Some("itoa@1.0.15")
        );
        assert_eq!(query_value("x=1&q=serde").as_deref(), Some("serde"));
        assert_eq!(query_value("q=%zz"), None);
        assert_eq!(query_value("q=%4"), Some("%4".into()));
        assert!(valid_query("itoa@1.0.15") && valid_query("serde_json"));
        assert!(!valid_query("<script>") && !valid_query("") && !valid_query("a@b c"));
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
