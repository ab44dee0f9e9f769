//! Trials on a throw-away repository: skips decided at collection with their evidence,
//! failures that tell the whole story, kinds that fail when their claim is false, filters
//! that match nothing. Uses the in-process `pv_validate` kind, so no binary is needed.

use std::path::{Path, PathBuf};

use apr_harness::evidence::{Evidence, Verdict};
use apr_harness::trials::{self, Paths, Plan};

struct TempRepo {
    paths: Paths,
}

impl TempRepo {
    fn new(tag: &str, contracts: &[(&str, &str)]) -> TempRepo {
        let root =
            std::env::temp_dir().join(format!("apr-harness-trials-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("contracts")).unwrap();
        std::fs::write(
            root.join("contracts/models.yaml"),
            "models:\n  absent-model:\n    description: never present\n    fixture: no/such/file.gguf\n",
        )
        .unwrap();
        for (name, text) in contracts {
            std::fs::write(root.join("contracts").join(name), text).unwrap();
        }
        // an invalid contract outside contracts/, for pv_validate to reject
        std::fs::write(
            root.join("bad.yaml"),
            "metadata:\n  id: bad\n  status: DRAFT\n  bogus: 1\n",
        )
        .unwrap();
        let paths = Paths {
            contracts_dir: root.join("contracts"),
            evidence_dir: root.join("evidence"),
            repo_root: root,
        };
        TempRepo { paths }
    }
    fn evidence(&self, contract: &str, id: &str) -> Evidence {
        let p = self
            .paths
            .evidence_dir
            .join(contract)
            .join(format!("{id}.json"));
        serde_json::from_str(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    }
}

impl Drop for TempRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.paths.repo_root);
    }
}

fn contract(id: &str, status: &str, tests: &str) -> String {
    format!(
        concat!(
            "metadata:\n  id: {id}\n  version: \"1\"\n  description: d\n  references: [r]\n",
            "  status: {status}\nequations:\n  e:\n    formula: \"x = x\"\nfalsification_tests:\n{tests}"
        ),
        id = id,
        status = status,
        tests = tests
    )
}

fn pv_validate_test(id: &str, path: &str, expect: &str, requires: &str) -> String {
    format!(
        concat!(
            "  - id: {id}\n    rule: r\n    prediction: \"{path} is {expect}\"\n    test: t\n",
            "    if_fails: look at {path}\n    check:\n      kind: pv_validate\n      path: {path}\n",
            "      expect: {expect}\n{requires}"
        ),
        id = id,
        path = path,
        expect = expect,
        requires = requires
    )
}

fn rel(p: &Path, root: &Path) -> PathBuf {
    p.strip_prefix(root).unwrap().to_path_buf()
}

#[test]
fn pass_and_fail_write_evidence_and_a_failure_tells_the_story() {
    let tests = pv_validate_test("FALSIFY-T-001", "contracts", "valid", "")
        + &pv_validate_test("FALSIFY-T-002", "bad.yaml", "valid", "");
    let repo = TempRepo::new(
        "story",
        &[("t-v1.yaml", &contract("t-v1", "DRAFT", &tests))],
    );
    let list = trials::collect_with(&repo.paths, None, false).unwrap();
    assert_eq!(
        list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["t-v1::FALSIFY-T-001", "t-v1::FALSIFY-T-002"]
    );
    assert!(list.iter().all(|t| t.plan == Plan::Run));

    let ok = trials::run(&list[0], &repo.paths);
    assert_eq!(ok.verdict, Verdict::Pass, "{}", ok.message);
    assert_eq!(repo.evidence("t-v1", "FALSIFY-T-001").status, Verdict::Pass);

    let bad = trials::run(&list[1], &repo.paths);
    assert_eq!(bad.verdict, Verdict::Fail);
    let m = &bad.message;
    assert!(m.contains("t-v1::FALSIFY-T-002 FAILED"), "{m}");
    assert!(m.contains("claim:    bad.yaml is valid"), "{m}");
    assert!(
        m.contains("SCHEMA-001"),
        "measured findings are quoted: {m}"
    );
    assert!(
        m.contains("not held: validity equals \"valid\" (measured \"invalid\")"),
        "{m}"
    );
    assert!(
        m.contains("evidence: evidence/t-v1/FALSIFY-T-002.json"),
        "{m}"
    );
    let ev = repo.evidence("t-v1", "FALSIFY-T-002");
    assert_eq!(ev.status, Verdict::Fail);
    assert_eq!(ev.measurements[0].value, "invalid");
    assert_eq!(ev.contract.file, "contracts/t-v1.yaml");
    assert!(ev.engine.version.starts_with("0."));
    let _ = rel(&repo.paths.evidence_dir, &repo.paths.repo_root);
}

#[test]
fn proposed_contract_is_skipped_with_reason_even_when_models_are_required() {
    let t = pv_validate_test(
        "FALSIFY-P-001",
        "contracts",
        "valid",
        "    requires:\n      model: absent-model\n",
    );
    let repo = TempRepo::new(
        "proposed",
        &[("p-v1.yaml", &contract("p-v1", "PROPOSED", &t))],
    );
    let list = trials::collect_with(&repo.paths, None, true).unwrap();
    let Plan::Skip(why) = &list[0].plan else {
        panic!("{:?}", list[0].plan)
    };
    assert!(why.starts_with("PROPOSED: "), "{why}");
    trials::record_skip(&list[0], &repo.paths).unwrap();
    let ev = repo.evidence("p-v1", "FALSIFY-P-001");
    assert_eq!(ev.status, Verdict::Skip);
    assert_eq!(&ev.reason, why);
}

/// `dequant_parity` compares every value's f32 bits with the oracle's: a copy of the
/// committed gguf-py reference passes, and the same copy with one flipped bit fails, naming
/// the value's index and both bit patterns in the message and the evidence.
#[test]
fn dequant_parity_fails_on_a_corrupted_reference_and_names_the_value() {
    let t = concat!(
        "  - id: FALSIFY-DQ-001\n    rule: r\n    prediction: Q4_K equals gguf-py\n    test: t\n",
        "    if_fails: f\n    check:\n      kind: dequant_parity\n",
        "      manifest: quant/manifest.json\n      type: Q4_K\n"
    );
    let repo = TempRepo::new("dequant", &[("dq-v1.yaml", &contract("dq-v1", "DRAFT", t))]);
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/data/quant");
    let dir = repo.paths.repo_root.join("quant");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(committed.join("q4_k.bin"), dir.join("q4_k.bin")).unwrap();
    let mut reference = std::fs::read(committed.join("q4_k.f32")).unwrap();
    std::fs::write(dir.join("q4_k.f32"), &reference).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!(
            r#"{{"entries": [{{"type": "Q4_K", "file": "q4_k.bin", "reference": "q4_k.f32",
                "n_values": {}, "reference_by": "gguf-py gguf.quants.dequantize"}}]}}"#,
            reference.len() / 4
        ),
    )
    .unwrap();
    let list = trials::collect_with(&repo.paths, None, true).unwrap();
    let done = trials::run(&list[0], &repo.paths);
    assert_eq!(done.verdict, Verdict::Pass, "{}", done.message);

    // Flip the lowest mantissa bit of value 1000 (block 3, element 232 of 256).
    let index = 1000;
    let oracle = u32::from_le_bytes(reference[4 * index..4 * index + 4].try_into().unwrap());
    reference[4 * index] ^= 1;
    std::fs::write(dir.join("q4_k.f32"), &reference).unwrap();
    let done = trials::run(&list[0], &repo.paths);
    assert_eq!(done.verdict, Verdict::Fail, "{}", done.message);
    let (want, got) = (format!("{:#010x}", oracle ^ 1), format!("{oracle:#010x}"));
    assert!(
        done.message
            .contains("first difference in q4_k.bin at index 1000 (block 3, element 232)")
            && done.message.contains(&want)
            && done.message.contains(&got),
        "{}",
        done.message
    );
    let ev = repo.evidence("dq-v1", "FALSIFY-DQ-001");
    assert_eq!(ev.status, Verdict::Fail);
    let first = ev
        .measurements
        .iter()
        .find(|m| m.name == "first differing value")
        .expect("first differing value recorded");
    assert!(!first.ok);
    assert_eq!(first.value["index"], 1000);
    assert_eq!(first.value["expected_bits"], want.as_str());
    assert_eq!(first.value["found_bits"], got.as_str());
    let differing = ev
        .measurements
        .iter()
        .find(|m| m.metric == "bit_exact")
        .expect("differing count recorded");
    assert_eq!(differing.value, 1);
}

#[test]
fn missing_model_skips_or_fails_under_require_models() {
    let t = pv_validate_test(
        "FALSIFY-M-001",
        "contracts",
        "valid",
        "    requires:\n      model: absent-model\n",
    );
    let repo = TempRepo::new("model", &[("m-v1.yaml", &contract("m-v1", "DRAFT", &t))]);
    let list = trials::collect_with(&repo.paths, None, false).unwrap();
    let Plan::Skip(why) = &list[0].plan else {
        panic!("{:?}", list[0].plan)
    };
    assert!(why.contains("model `absent-model` not found"), "{why}");
    let list = trials::collect_with(&repo.paths, None, true).unwrap();
    let Plan::Fail(why) = &list[0].plan else {
        panic!("{:?}", list[0].plan)
    };
    assert!(
        why.starts_with("APR_REQUIRE_MODELS=1: model `absent-model` not found"),
        "{why}"
    );
    assert_eq!(trials::run(&list[0], &repo.paths).verdict, Verdict::Fail);
}

#[test]
fn filters_select_and_a_filter_matching_nothing_is_an_error() {
    let tests = pv_validate_test("FALSIFY-F-001", "contracts", "valid", "")
        + &pv_validate_test("FALSIFY-F-002", "contracts", "valid", "");
    let repo = TempRepo::new(
        "filter",
        &[("f-v1.yaml", &contract("f-v1", "DRAFT", &tests))],
    );
    assert_eq!(
        trials::collect_with(&repo.paths, Some("f-v1::*-002"), false)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        trials::collect_with(&repo.paths, Some("F-001"), false)
            .unwrap()
            .len(),
        1
    );
    let err = trials::collect_with(&repo.paths, Some("nothing-*"), false).unwrap_err();
    assert!(err.contains("matches no falsification test"), "{err}");
}

#[test]
fn invalid_contracts_are_never_run() {
    let repo = TempRepo::new(
        "invalid",
        &[(
            "i-v1.yaml",
            "metadata:\n  id: i-v1\n  status: DRAFT\n  typo: 1\n",
        )],
    );
    let err = trials::collect_with(&repo.paths, None, false).unwrap_err();
    assert!(err.contains("SCHEMA-001") && err.contains("typo"), "{err}");
}

/// An engine-backed parity check can fail, and its failure names the first divergent
/// (layer, stage) and leaves the per-stage cells for the heatmap. (Runs the `apr` binary.)
#[test]
fn stage_parity_beyond_tolerance_fails_with_first_divergence() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/llama-Q4_0.gguf");
    let t = concat!(
        "  - id: FALSIFY-SP-001\n    rule: r\n    prediction: cpu equals cpu-ref to 1e-30\n    test: t\n",
        "    if_fails: f\n    check:\n      kind: stage_parity\n      a: {backend: cpu}\n",
        "      b: {backend: cpu-ref}\n      stages: [attn_norm, qkv_matmul]\n      layers: [0]\n",
        "      metric: nmse\n      tolerance: 1e-30\n    requires:\n      model: tiny\n"
    );
    let repo = TempRepo::new("parity", &[("sp-v1.yaml", &contract("sp-v1", "DRAFT", t))]);
    std::fs::write(
        repo.paths.contracts_dir.join("models.yaml"),
        format!(
            "models:\n  tiny:\n    fixture: {}\n",
            fixture.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let list = trials::collect_with(&repo.paths, None, true).unwrap();
    assert_eq!(list[0].plan, Plan::Run);
    let done = trials::run(&list[0], &repo.paths);
    assert_eq!(done.verdict, Verdict::Fail, "{}", done.message);
    assert!(
        done.message
            .contains("first divergence: layer 0, stage qkv_matmul (nmse"),
        "{}",
        done.message
    );
    let ev = repo.evidence("sp-v1", "FALSIFY-SP-001");
    let cells = ev.divergence.expect("divergence recorded").cells;
    assert_eq!(cells.len(), 2, "{cells:?}");
    assert_eq!(cells[0].stage, "attn_norm");
    assert_eq!(cells[0].value, 0.0, "attn_norm is exact on both backends");
}

/// A bisect expectation that does not hold fails and says what bisect found instead.
#[test]
fn bisect_with_wrong_expectation_fails() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/llama-Q4_0.gguf");
    let t = concat!(
        "  - id: FALSIFY-BI-001\n    rule: r\n    prediction: bisect names layer 2\n    test: t\n",
        "    if_fails: f\n    check:\n      kind: bisect\n      a: {backend: cpu}\n",
        "      b: {backend: cpu, inject_fault: {layer: 3, stage: ffn_gate, scale: 1.36}}\n",
        "      metric: nmse\n      tolerance: ggml_mul_mat_nmse\n",
        "      expect_first_divergence: {layer: 2, stage: ffn_gate}\n",
        "    requires:\n      model: tiny\n"
    );
    let repo = TempRepo::new("bisect", &[("bi-v1.yaml", &contract("bi-v1", "DRAFT", t))]);
    std::fs::write(
        repo.paths.contracts_dir.join("models.yaml"),
        format!(
            "models:\n  tiny:\n    fixture: {}\n",
            fixture.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let list = trials::collect_with(&repo.paths, None, true).unwrap();
    let done = trials::run(&list[0], &repo.paths);
    assert_eq!(done.verdict, Verdict::Fail, "{}", done.message);
    assert!(
        done.message
            .contains("first divergence layer 3 ffn_gate, expected layer 2 ffn_gate"),
        "{}",
        done.message
    );
}
