//! Each invalid-contract fixture under tests/fixtures/invalid/ makes its rule fire, and
//! only its rule: the file name starts with the rule id (`ft-002-bad-id.yaml` → FT-002).
//! Every rule has a fixture (or, for IO-001 and SCHEMA-002, a test here).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use apr_harness::validate::{rules, validate_path, Severity};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// `ft-002-bad-id` → `FT-002`.
fn rule_of(path: &Path) -> String {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let mut parts = stem.splitn(3, '-');
    format!("{}-{}", parts.next().unwrap(), parts.next().unwrap()).to_uppercase()
}

const WARNING_RULES: &[&str] = &[rules::NO_TESTS, rules::TEST_IF_FAILS];

#[test]
fn each_fixture_fires_exactly_its_rule() {
    let contracts = root().join("contracts");
    for f in fixtures() {
        let want = rule_of(&f);
        let r = validate_path(&f, &contracts, &root());
        let errors: BTreeSet<&str> = r
            .findings
            .iter()
            .filter(|x| x.severity == Severity::Error)
            .map(|x| x.rule)
            .collect();
        let warnings: BTreeSet<&str> = r
            .findings
            .iter()
            .filter(|x| x.severity == Severity::Warning)
            .map(|x| x.rule)
            .collect();
        if WARNING_RULES.contains(&want.as_str()) {
            assert!(
                errors.is_empty(),
                "{}: unexpected errors {errors:?}\n{}",
                f.display(),
                r.render(&root())
            );
            assert!(
                warnings.contains(want.as_str()),
                "{}: warning {want} did not fire\n{}",
                f.display(),
                r.render(&root())
            );
            assert!(r.is_valid());
        } else {
            assert_eq!(
                errors,
                BTreeSet::from([want.as_str()]),
                "{}:\n{}",
                f.display(),
                r.render(&root())
            );
            assert!(!r.is_valid());
        }
        // every finding names its file and a line
        for x in &r.findings {
            assert!(x.line > 0, "{}: finding without a line: {x:?}", f.display());
        }
    }
}

#[test]
fn every_rule_has_a_fixture_or_a_test() {
    let covered: BTreeSet<String> = fixtures().iter().map(|f| rule_of(f)).collect();
    for (id, what) in rules::ALL {
        if *id == rules::IO || *id == rules::MODELS_FILE {
            continue; // tested below
        }
        assert!(
            covered.contains(*id),
            "rule {id} ({what}) has no fixture in tests/fixtures/invalid/"
        );
    }
}

#[test]
fn missing_path_is_io_001() {
    let r = validate_path(
        &root().join("tests/fixtures/no-such-dir"),
        &root().join("contracts"),
        &root(),
    );
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].rule, rules::IO);
    assert!(!r.is_valid());
}

#[test]
fn broken_models_yaml_is_schema_002() {
    let dir = std::env::temp_dir().join(format!("apr-suite-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("models.yaml"),
        "models:\n  m:\n    fixture: a.gguf\n    sha: x\n",
    )
    .unwrap();
    let r = validate_path(&dir, &dir, &root());
    let _ = std::fs::remove_dir_all(&dir);
    let hit = r
        .findings
        .iter()
        .find(|f| f.rule == rules::MODELS_FILE)
        .expect("SCHEMA-002 fires");
    assert_eq!((hit.line, hit.column), (4, 5), "{hit:?}");
}

#[test]
fn repository_contracts_are_valid() {
    let r = validate_path(
        &root().join("contracts"),
        &root().join("contracts"),
        &root(),
    );
    assert!(r.is_valid(), "{}{}", r.render(&root()), r.summary_line());
    assert!(r.contracts.len() >= 4);
}

#[test]
fn the_documented_example_is_valid() {
    let doc = std::fs::read_to_string(root().join("docs/contracts.md")).unwrap();
    let start = doc
        .find("```yaml\n")
        .expect("docs/contracts.md has a yaml example")
        + "```yaml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let dir = std::env::temp_dir().join(format!("apr-suite-doc-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("example-cli-v1.yaml");
    std::fs::write(&file, &doc[start..end]).unwrap();
    let r = validate_path(&file, &root().join("contracts"), &root());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        r.is_valid() && r.warnings() == 0,
        "{}{}",
        r.render(&root()),
        r.summary_line()
    );
    assert_eq!(r.contracts[0].contract.falsification_tests.len(), 3);
}
