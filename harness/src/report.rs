//! `pv status` and `pv report`: each contract's standing derived from its evidence, as a
//! text table, Markdown and one self-contained HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::checks::DivergenceCell;
use crate::evidence::{Evidence, Verdict};
use crate::schema::{LoadedContract, Status};

/// One contract with the evidence of each of its tests.
#[derive(Debug, Clone)]
pub struct Standing {
    pub id: String,
    pub version: String,
    pub declared: Status,
    pub tests: Vec<(String, Option<Evidence>)>,
}

impl Standing {
    pub fn count(&self, v: Verdict) -> usize {
        self.tests
            .iter()
            .filter(|(_, e)| e.as_ref().is_some_and(|e| e.status == v))
            .count()
    }
    pub fn missing(&self) -> usize {
        self.tests.iter().filter(|(_, e)| e.is_none()).count()
    }
    /// What the evidence supports: PROPOSED (declared so), FAILING (a test failed), UNRUN
    /// (a test has no evidence), DRAFT (runs, but some tests were skipped here), or the
    /// declared status when every test passed.
    pub fn evidenced(&self) -> String {
        if self.declared == Status::Proposed {
            "PROPOSED".into()
        } else if self.count(Verdict::Fail) > 0 {
            "FAILING".into()
        } else if self.missing() > 0 {
            "UNRUN".into()
        } else if self.count(Verdict::Skip) > 0 {
            "DRAFT".into()
        } else {
            self.declared.as_str().into()
        }
    }
}

/// Pair contracts with evidence (matched by contract id and test id).
pub fn standings(contracts: &[LoadedContract], evidence: &[Evidence]) -> Vec<Standing> {
    let by_key: BTreeMap<(&str, &str), &Evidence> = evidence
        .iter()
        .map(|e| ((e.contract.id.as_str(), e.test.id.as_str()), e))
        .collect();
    let mut out: Vec<Standing> = contracts
        .iter()
        .map(|c| {
            let m = &c.contract.metadata;
            Standing {
                id: m.id.clone(),
                version: m.version.clone(),
                declared: m.status,
                tests: c
                    .contract
                    .falsification_tests
                    .iter()
                    .map(|t| {
                        (
                            t.id.clone(),
                            by_key
                                .get(&(m.id.as_str(), t.id.as_str()))
                                .map(|e| (*e).clone()),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// `N passed, N failed, N skipped` over all standings.
pub fn totals_line(st: &[Standing]) -> String {
    let sum = |v| st.iter().map(|s| s.count(v)).sum::<usize>();
    let missing: usize = st.iter().map(Standing::missing).sum();
    let mut line = format!(
        "{} passed, {} failed, {} skipped",
        sum(Verdict::Pass),
        sum(Verdict::Fail),
        sum(Verdict::Skip)
    );
    if missing > 0 {
        line.push_str(&format!(" ({missing} without evidence)"));
    }
    line
}

/// The `pv status` table.
pub fn render_status(st: &[Standing]) -> String {
    let w = st.iter().map(|s| s.id.len()).max().unwrap_or(8).max(8);
    let mut s = format!(
        "{:<w$}  {:<22}  {:<22}  {:>4}  {:>4}  {:>4}  {:>7}\n",
        "contract", "declared", "evidenced", "pass", "fail", "skip", "missing"
    );
    for c in st {
        let _ = writeln!(
            s,
            "{:<w$}  {:<22}  {:<22}  {:>4}  {:>4}  {:>4}  {:>7}",
            c.id,
            c.declared.as_str(),
            c.evidenced(),
            c.count(Verdict::Pass),
            c.count(Verdict::Fail),
            c.count(Verdict::Skip),
            c.missing()
        );
    }
    s.push_str(&totals_line(st));
    s.push('\n');
    s
}

/// Header facts of a report.
#[derive(Debug, Clone)]
pub struct ReportMeta {
    pub generated: String,
    pub git_commit: Option<String>,
}

fn measured_text(e: &Evidence) -> (String, String) {
    let measured = e
        .measurements
        .iter()
        .map(|m| format!("{}: {}", m.name, compact(&m.value)))
        .collect::<Vec<_>>()
        .join("; ");
    let threshold = e
        .measurements
        .iter()
        .map(|m| format!("{} {}", m.metric, compact(&m.threshold)))
        .collect::<Vec<_>>()
        .join("; ");
    (measured, threshold)
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One heatmap: (title, layers, stages in compute order, cells).
type Heatmap = (String, Vec<Option<u32>>, Vec<String>, Vec<DivergenceCell>);

/// The divergence heatmaps of every evidence file with cells.
fn heatmaps(st: &[Standing]) -> Vec<Heatmap> {
    let mut out = Vec::new();
    for c in st {
        for (id, e) in &c.tests {
            let Some(d) = e.as_ref().and_then(|e| e.divergence.as_ref()) else {
                continue;
            };
            if d.cells.is_empty() {
                continue;
            }
            let mut layers: Vec<Option<u32>> = d.cells.iter().map(|x| x.layer).collect();
            layers.sort_by_key(|l| l.map_or(u64::MAX, u64::from));
            layers.dedup();
            let mut stages: Vec<String> = d.cells.iter().map(|x| x.stage.clone()).collect();
            stages.sort_by_key(|s| (crate::stages::order(s), s.clone()));
            stages.dedup();
            out.push((format!("{}::{id}", c.id), layers, stages, d.cells.clone()));
        }
    }
    out
}

fn layer_label(l: Option<u32>) -> String {
    l.map_or("model".to_string(), |l| l.to_string())
}

/// The Markdown report.
pub fn render_markdown(st: &[Standing], meta: &ReportMeta) -> String {
    let mut s = String::from("# Falsification report\n\n");
    let _ = writeln!(
        s,
        "Generated {} at commit `{}`.\n",
        meta.generated,
        meta.git_commit.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(s, "**{}**\n", totals_line(st));
    s.push_str("| contract | declared | evidenced | pass | fail | skip | missing |\n|---|---|---|---|---|---|---|\n");
    for c in st {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.id,
            c.declared.as_str(),
            c.evidenced(),
            c.count(Verdict::Pass),
            c.count(Verdict::Fail),
            c.count(Verdict::Skip),
            c.missing()
        );
    }
    for c in st {
        let _ = writeln!(
            s,
            "\n## {} (v{}, {} → evidenced {})\n",
            c.id,
            c.version,
            c.declared.as_str(),
            c.evidenced()
        );
        s.push_str("| test | status | measured | threshold | reason |\n|---|---|---|---|---|\n");
        for (id, e) in &c.tests {
            match e {
                None => {
                    let _ = writeln!(s, "| {id} | no evidence | | | |");
                }
                Some(e) => {
                    let (m, t) = measured_text(e);
                    let _ = writeln!(
                        s,
                        "| {id} | {} | {} | {} | {} |",
                        e.status.as_str(),
                        md_cell(&m),
                        md_cell(&t),
                        md_cell(first_line(&e.reason))
                    );
                }
            }
        }
    }
    let maps = heatmaps(st);
    if !maps.is_empty() {
        s.push_str("\n## Divergence heatmaps (per layer × stage)\n");
        for (title, layers, stages, cells) in maps {
            let _ = writeln!(s, "\n### {title}\n");
            let _ = writeln!(s, "| layer | {} |", stages.join(" | "));
            let _ = writeln!(s, "|---|{}", "---|".repeat(stages.len()));
            for l in &layers {
                let row: Vec<String> = stages
                    .iter()
                    .map(
                        |st| match cells.iter().find(|x| x.layer == *l && &x.stage == st) {
                            Some(x) if x.value > x.tolerance => format!("**{:.2e}** ✗", x.value),
                            Some(x) => format!("{:.2e}", x.value),
                            None => String::new(),
                        },
                    )
                    .collect();
                let _ = writeln!(s, "| {} | {} |", layer_label(*l), row.join(" | "));
            }
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Background colour for a heatmap cell: green within tolerance (lighter when far below),
/// red beyond it (darker the further).
fn heat_colour(value: f64, tolerance: f64) -> String {
    if value <= tolerance {
        let frac = if tolerance > 0.0 {
            (value / tolerance).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let g = 235 - (frac * 60.0) as u8;
        format!("rgb(200,{g},200)")
    } else {
        let ratio = if tolerance > 0.0 {
            value / tolerance
        } else {
            f64::INFINITY
        };
        let k = if ratio.is_finite() {
            (ratio.log10() / 4.0).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let r = 255 - (k * 80.0) as u8;
        let gb = 190 - (k * 150.0) as u8;
        format!("rgb({r},{gb},{gb})")
    }
}

/// The self-contained HTML report (inline CSS, no scripts, no external resources).
pub fn render_html(st: &[Standing], meta: &ReportMeta) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Falsification report</title>\n<style>\n\
body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}\n\
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;font-size:90%}\n\
.pass{background:#d8f5d8}.fail{background:#f8d0d0}.skip{background:#eee;color:#555}.none{background:#fff3c4}\n\
pre{white-space:pre-wrap;margin:0}td.num{text-align:right;font-family:monospace}\n</style></head><body>\n",
    );
    let _ = writeln!(
        s,
        "<h1>Falsification report</h1>\n<p>Generated {} at commit <code>{}</code>.</p>",
        esc(&meta.generated),
        esc(meta.git_commit.as_deref().unwrap_or("unknown"))
    );
    let _ = writeln!(s, "<p><strong>{}</strong></p>", esc(&totals_line(st)));
    s.push_str("<table><tr><th>contract</th><th>declared</th><th>evidenced</th><th>pass</th><th>fail</th><th>skip</th><th>missing</th></tr>\n");
    for c in st {
        let _ = writeln!(
            s,
            "<tr><td><a href=\"#{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.declared.as_str(),
            esc(&c.evidenced()),
            c.count(Verdict::Pass),
            c.count(Verdict::Fail),
            c.count(Verdict::Skip),
            c.missing(),
            id = esc(&c.id)
        );
    }
    s.push_str("</table>\n");
    for c in st {
        let _ = writeln!(
            s,
            "<h2 id=\"{id}\">{id} <small>v{} · {} → evidenced {}</small></h2>",
            esc(&c.version),
            c.declared.as_str(),
            esc(&c.evidenced()),
            id = esc(&c.id)
        );
        s.push_str("<table><tr><th>test</th><th>status</th><th>measured</th><th>threshold</th><th>reason</th></tr>\n");
        for (id, e) in &c.tests {
            match e {
                None => {
                    let _ = writeln!(s, "<tr class=\"none\"><td>{}</td><td>no evidence</td><td></td><td></td><td></td></tr>", esc(id));
                }
                Some(e) => {
                    let (m, t) = measured_text(e);
                    let _ = writeln!(
                        s,
                        "<tr class=\"{cls}\"><td>{}</td><td>{cls}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
                        esc(id),
                        esc(&m),
                        esc(&t),
                        esc(e.reason.trim_end()),
                        cls = e.status.as_str()
                    );
                }
            }
        }
        s.push_str("</table>\n");
    }
    let maps = heatmaps(st);
    if !maps.is_empty() {
        s.push_str("<h2>Divergence heatmaps (per layer × stage)</h2>\n");
        for (title, layers, stages, cells) in maps {
            let _ = writeln!(
                s,
                "<h3>{}</h3>\n<table><tr><th>layer</th>{}</tr>",
                esc(&title),
                stages
                    .iter()
                    .map(|x| format!("<th>{}</th>", esc(x)))
                    .collect::<String>()
            );
            for l in &layers {
                let _ = write!(s, "<tr><th>{}</th>", layer_label(*l));
                for stg in &stages {
                    match cells.iter().find(|x| x.layer == *l && &x.stage == stg) {
                        Some(x) => {
                            let _ = write!(
                                s,
                                "<td class=\"num\" style=\"background:{}\" title=\"{} {} (tolerance {})\">{:.2e}</td>",
                                heat_colour(x.value, x.tolerance),
                                esc(&x.metric),
                                x.value,
                                x.tolerance,
                                x.value
                            );
                        }
                        None => s.push_str("<td></td>"),
                    }
                }
                s.push_str("</tr>\n");
            }
            s.push_str("</table>\n");
        }
    }
    s.push_str("</body></html>\n");
    s
}
