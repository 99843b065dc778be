//! The report's three forms: a text table, a JSON document, and one self-contained HTML page (its
//! style inline, no script, no external resource) that a reviewer can attach to a sign-off.

use std::fmt::Write as _;

use super::report::{Finding, Outcome, Report};

/// What a reviewer reads in the outcome column beyond its label: why it failed, or where to look.
fn detail(f: &Finding) -> String {
    match &f.outcome {
        Outcome::Pass => String::new(),
        Outcome::Fail { why } => why.clone(),
        Outcome::NotObservable { look_at } => format!("look at: {look_at}"),
    }
}

/// The text table: a summary per guide, then one block per item.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Security checklist audit of {} at {}",
        report.api, report.at
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<40} {:>5} {:>5} {:>15}",
        "guide", "pass", "fail", "not observable"
    );
    for (guide, c) in report.summary() {
        let _ = writeln!(
            out,
            "{:<40} {:>5} {:>5} {:>15}",
            guide.title(),
            c.pass,
            c.fail,
            c.not_observable
        );
    }
    let _ = writeln!(out);
    for f in &report.findings {
        let mark = match f.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail { .. } => "FAIL",
            Outcome::NotObservable { .. } => "N/O ",
        };
        let _ = writeln!(
            out,
            "{mark}  {:<24} {} [{}]",
            f.item.id,
            f.item.paraphrase,
            f.item.guide.title()
        );
        let d = detail(f);
        if !d.is_empty() {
            let _ = writeln!(out, "      {d}");
        }
        for e in &f.evidence {
            let _ = writeln!(out, "      · {e}");
        }
    }
    let failed = report
        .findings
        .iter()
        .filter(|f| f.outcome.failed())
        .count();
    let _ = writeln!(out);
    if failed == 0 {
        let _ = writeln!(out, "every observable item passes");
    } else {
        let _ = writeln!(out, "{failed} observable item(s) fail");
    }
    out
}

/// The JSON document: `{api, at, summary: {guide: counts}, findings: [...]}`.
pub fn json(report: &Report) -> String {
    let summary: serde_json::Map<String, serde_json::Value> = report
        .summary()
        .into_iter()
        .map(|(g, c)| {
            (
                g.title().to_owned(),
                serde_json::to_value(c).unwrap_or_default(),
            )
        })
        .collect();
    let doc = serde_json::json!({
        "api": report.api,
        "at": report.at,
        "failed": report.failed(),
        "summary": summary,
        "findings": report.findings,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1b1b}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;margin:1rem 0}\
th,td{border:1px solid #ccc;padding:.4rem .6rem;text-align:left;vertical-align:top;font-size:.9rem}\
th{background:#f3f3f3}.pass{background:#e6f4ea}.fail{background:#fce8e6}.n-o{background:#fef7e0}\
td.evidence{font-family:ui-monospace,monospace;font-size:.8rem;word-break:break-all}\
ul{margin:0;padding-left:1rem}.verdict{font-weight:bold}";

/// One self-contained page: the summary (counts per guide), then the table of items.
pub fn html(report: &Report) -> String {
    let failed = report
        .findings
        .iter()
        .filter(|f| f.outcome.failed())
        .count();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>Security checklist audit of {api}</title><style>{STYLE}</style></head><body>\n\
<h1>Security checklist audit</h1>\n<p>API <code>{api}</code>, audited at {at}.</p>\n\
<p class=\"verdict {class}\" id=\"verdict\">{verdict}</p>\n",
        api = esc(&report.api),
        at = esc(&report.at),
        class = if failed == 0 { "pass" } else { "fail" },
        verdict = if failed == 0 {
            "Every observable item passes.".to_owned()
        } else {
            format!("{failed} observable item(s) fail.")
        },
    );
    out.push_str(
        "<table id=\"summary\"><thead><tr><th>guide</th><th>pass</th><th>fail</th>\
<th>not observable from outside</th></tr></thead><tbody>\n",
    );
    for (guide, c) in report.summary() {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(guide.title()),
            c.pass,
            c.fail,
            c.not_observable
        );
    }
    out.push_str(
        "</tbody></table>\n<table id=\"items\"><thead><tr><th>item</th><th>guide</th>\
<th>outcome</th><th>evidence</th></tr></thead><tbody>\n",
    );
    for f in &report.findings {
        let class = match f.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail { .. } => "fail",
            Outcome::NotObservable { .. } => "n-o",
        };
        let d = detail(f);
        let _ = write!(
            out,
            "<tr class=\"{class}\" id=\"{id}\"><td>{para}<br><small><code>{id}</code></small></td>\
<td>{guide}</td><td><b>{label}</b>{sep}{detail}</td><td class=\"evidence\"><ul>",
            id = esc(f.item.id),
            para = esc(f.item.paraphrase),
            guide = esc(f.item.guide.title()),
            label = esc(f.outcome.label()),
            sep = if d.is_empty() { "" } else { "<br>" },
            detail = esc(&d),
        );
        for e in &f.evidence {
            let _ = write!(out, "<li>{}</li>", esc(e));
        }
        out.push_str("</ul></td></tr>\n");
    }
    out.push_str("</tbody></table>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checklist::ITEMS;
    use crate::audit::report::Finding;

    fn report() -> Report {
        Report {
            api: "https://api.example.com".into(),
            at: "2026-12-03T00:00:00Z".into(),
            findings: ITEMS
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    let outcome = match n % 3 {
                        0 => Outcome::Pass,
                        1 => Outcome::fail("<script>alert(1)</script>"),
                        _ => Outcome::not_observable("docs"),
                    };
                    Finding::new(*i, outcome, vec![format!("GET /x?a=<b>&c → 200 {n}")])
                })
                .collect(),
        }
    }

    #[test]
    fn the_html_report_escapes_what_it_quotes_and_loads_nothing_from_elsewhere() {
        let page = html(&report());
        assert!(!page.contains("<script"), "an answer's text became markup");
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("src=") && !page.contains("href="));
        for i in ITEMS {
            assert!(page.contains(&esc(i.paraphrase)), "{} is missing", i.id);
        }
    }

    #[test]
    fn the_summary_counts_each_guides_outcomes() {
        let r = report();
        let total: usize = r
            .summary()
            .iter()
            .map(|(_, c)| c.pass + c.fail + c.not_observable)
            .sum();
        assert_eq!(total, ITEMS.len());
        assert!(r.failed());
        let doc: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(doc["findings"].as_array().unwrap().len(), ITEMS.len());
        assert_eq!(doc["findings"][1]["outcome"], "fail");
        assert_eq!(doc["findings"][0]["id"], ITEMS[0].id);
    }
}
