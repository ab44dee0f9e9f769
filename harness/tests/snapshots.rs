//! insta snapshots of what people read: `pv validate` output and the report (Markdown and
//! HTML), with times, commits and absolute paths redacted. Numbers are compared raw
//! elsewhere; these pin the presentation.

use std::path::Path;
use std::process::Command;

use apr_harness::checks::{Divergence, DivergenceCell, Measurement};
use apr_harness::evidence::{
    self, ContractRef, EngineInfo, Evidence, HostInfo, RunInfo, TestRef, Verdict,
};
use apr_harness::report::{self, ReportMeta};
use apr_harness::schema::parse_contract;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn filters() -> Vec<(String, String)> {
    let root = regex::escape(&repo_root().display().to_string());
    vec![
        (root, "[ROOT]".into()),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ".into(), "[TIME]".into()),
        (r"\b[0-9a-f]{40}\b".into(), "[COMMIT]".into()),
    ]
}

macro_rules! snap {
    ($name:expr, $value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        for (re, with) in filters() {
            settings.add_filter(&re, with);
        }
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

fn pv(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pv"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn pv_validate_invalid_fixtures() {
    let (code, out) = pv(&["validate", "tests/fixtures/invalid"]);
    assert_eq!(code, 1);
    snap!("pv_validate_invalid_fixtures", out);
}

#[test]
fn pv_validate_one_fixture() {
    let (code, out) = pv(&[
        "validate",
        "tests/fixtures/invalid/schema-001-unknown-key.yaml",
    ]);
    assert_eq!(code, 1);
    snap!("pv_validate_schema_001", out);
}

const CONTRACT: &str = r#"
metadata:
  id: demo-parity-v1
  version: "1.2.0"
  description: demo
  references: [r]
  status: ACTIVE_RUNTIME
equations:
  e:
    formula: "a = b"
falsification_tests:
  - id: FALSIFY-DEMO-001
    rule: r
    prediction: p
    test: t
    if_fails: f
    check: {kind: pv_validate, path: contracts, expect: valid}
  - id: FALSIFY-DEMO-002
    rule: r
    prediction: every stage within NMSE 5e-4
    test: t
    if_fails: f
    check: {kind: pv_validate, path: contracts, expect: valid}
  - id: FALSIFY-DEMO-003
    rule: r
    prediction: p
    test: t
    if_fails: f
    check: {kind: pv_validate, path: contracts, expect: valid}
  - id: FALSIFY-DEMO-004
    rule: r
    prediction: p
    test: t
    if_fails: f
    check: {kind: pv_validate, path: contracts, expect: valid}
"#;

fn ev(
    id: &str,
    status: Verdict,
    reason: &str,
    ms: Vec<Measurement>,
    divergence: Option<Divergence>,
) -> Evidence {
    let started = 1_796_440_271;
    Evidence {
        schema: evidence::SCHEMA.into(),
        contract: ContractRef {
            id: "demo-parity-v1".into(),
            version: "1.2.0".into(),
            status: "ACTIVE_RUNTIME".into(),
            file: "contracts/demo-parity-v1.yaml".into(),
        },
        test: TestRef {
            id: id.into(),
            rule: "r".into(),
            prediction: "p".into(),
            if_fails: "f".into(),
            check_kind: Some("stage_parity".into()),
        },
        status,
        reason: reason.into(),
        measurements: ms,
        divergence,
        model: None,
        engine: EngineInfo {
            version: "0.1.0".into(),
            git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            git_dirty: Some(false),
        },
        run: RunInfo {
            backend: Some("cpu".into()),
            simd: None,
            threads: Some(2),
            host: HostInfo {
                hostname: "h".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                cpus: 2,
            },
        },
        started_unix: started,
        started: evidence::rfc3339(started),
        duration_ms: 12,
    }
}

fn cell(layer: Option<u32>, stage: &str, value: f64) -> DivergenceCell {
    DivergenceCell {
        layer,
        stage: stage.into(),
        metric: "nmse".into(),
        value,
        tolerance: 5e-4,
    }
}

fn standings() -> Vec<report::Standing> {
    let c = parse_contract(
        Path::new("contracts/demo-parity-v1.yaml"),
        CONTRACT.to_string(),
    )
    .unwrap();
    let cells = vec![
        cell(Some(0), "ffn_gate", 1e-9),
        cell(Some(0), "attn_norm", 0.0),
        cell(Some(3), "attn_norm", 2e-8),
        cell(Some(3), "ffn_gate", 0.36),
        cell(None, "lm_head", 0.9),
    ];
    let div = Divergence {
        first: Some(cell(Some(3), "ffn_gate", 0.36)),
        cells,
    };
    let evs = vec![
        ev(
            "FALSIFY-DEMO-001",
            Verdict::Pass,
            "validity valid",
            vec![Measurement::new(
                "validity", "equals", "valid", "valid", true,
            )],
            None,
        ),
        ev(
            "FALSIFY-DEMO-002",
            Verdict::Fail,
            "layer 3 ffn_gate nmse 0.36 > 5e-4\nsecond line",
            vec![Measurement::new("max nmse", "nmse<=", 0.36, 5e-4, false)],
            Some(div),
        ),
        ev(
            "FALSIFY-DEMO-003",
            Verdict::Skip,
            "model `x` not found",
            vec![],
            None,
        ),
    ];
    report::standings(&[c], &evs)
}

#[test]
fn report_markdown() {
    let st = standings();
    assert_eq!(st[0].evidenced(), "FAILING");
    let meta = ReportMeta {
        generated: evidence::rfc3339(1_800_000_000),
        git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
    };
    snap!("report_markdown", report::render_markdown(&st, &meta));
}

#[test]
fn report_html() {
    let meta = ReportMeta {
        generated: evidence::rfc3339(1_800_000_000),
        git_commit: None,
    };
    let html = report::render_html(&standings(), &meta);
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "self-contained"
    );
    snap!("report_html", html);
}

#[test]
fn status_table() {
    snap!("status_table", report::render_status(&standings()));
}
