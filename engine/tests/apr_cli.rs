//! `apr convert` and `apr inspect --verify` through the real binary: exit status, stdout and
//! stderr, and the files left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn apr(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apr"))
        .args(args)
        .output()
        .expect("run apr")
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (i32, String, String) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let out = apr(&args);
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/qwen3-Q4_K_M.gguf")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("apr_cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn convert_verify_and_back() {
    let dir = temp_dir("roundtrip");
    let src = fixture();
    let apr_path = dir.join("m.apr");
    let (code, out, err) = run(&[&"convert", &src, &"-o", &apr_path]);
    assert_eq!((code, err.as_str()), (0, ""));
    let size = std::fs::metadata(&apr_path).unwrap().len();
    assert_eq!(
        out,
        format!(
            "apr convert: {} -> {}: gguf -> apr: 24 metadata keys, 47 tensors, {size} bytes written\n",
            src.display(),
            apr_path.display()
        )
    );

    let (code, out, err) = run(&[&"inspect", &"--verify", &apr_path]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let f = apr_engine::apr::AprFile::open(&apr_path).unwrap();
    let data: u64 = f.as_gguf().tensors().iter().map(|t| t.n_bytes).sum();
    assert_eq!(
        out,
        format!(
            "{}: header checksum {:#018x} ok; 47 of 47 tensor checksums ok ({data} bytes): OK\n",
            apr_path.display(),
            f.header().header_checksum
        )
    );

    // --to gguf with an extension that says nothing; byte-identical to the original.
    let back = dir.join("back.bin");
    let (code, _, err) = run(&[&"convert", &apr_path, &"--output", &back, &"--to", &"gguf"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&src).unwrap());
    assert_eq!(listing(&dir), ["back.bin", "m.apr"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_names_the_corrupt_tensor_and_exits_1() {
    let dir = temp_dir("corrupt");
    let apr_path = dir.join("m.apr");
    let (code, _, _) = run(&[&"convert", &fixture(), &"-o", &apr_path]);
    assert_eq!(code, 0);
    let f = apr_engine::apr::AprFile::open(&apr_path).unwrap();
    let (i, t) = f
        .as_gguf()
        .tensors()
        .iter()
        .enumerate()
        .find(|(_, t)| t.name == "blk.0.attn_k.weight")
        .map(|(i, t)| (i, t.clone()))
        .unwrap();
    let stored = f.tensor_checksums()[i];
    drop(f);
    let mut bytes = std::fs::read(&apr_path).unwrap();
    bytes[t.file_offset as usize + 3] ^= 0x80;
    let computed = apr_engine::apr::fnv1a64(
        &bytes[t.file_offset as usize..(t.file_offset + t.n_bytes) as usize],
    );
    std::fs::write(&apr_path, &bytes).unwrap();

    let (code, out, err) = run(&[&"inspect", &"--verify", &apr_path]);
    assert_eq!((code, err.as_str()), (1, ""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "MISMATCH tensor \"blk.0.attn_k.weight\" (#{i}, {} bytes): stored {stored:#018x}, computed {computed:#018x}",
            t.n_bytes
        )
    );
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1].ends_with("46 of 47 tensor checksums ok (1218560 bytes): FAILED"),
        "{}",
        lines[1]
    );

    // Converting it out is refused, and nothing is left behind.
    let (code, out, err) = run(&[&"convert", &apr_path, &"-o", &dir.join("out.gguf")]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with("apr convert: error: ")
            && err.contains("tensor \"blk.0.attn_k.weight\": checksum mismatch"),
        "{err}"
    );
    assert_eq!(listing(&dir), ["m.apr"]);

    // A metadata byte: the header checksum.
    let arch = bytes.windows(5).position(|w| w == b"qwen3").unwrap();
    bytes[arch] = b'Q';
    std::fs::write(&apr_path, &bytes).unwrap();
    let (code, out, err) = run(&[&"inspect", &"--verify", &apr_path]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with(&format!(
            "apr inspect --verify: error: {}: header checksum mismatch: header.checksum = ",
            apr_path.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_exit_1_with_a_message() {
    let dir = temp_dir("errors");
    let src = dir.join("m.gguf");
    std::fs::copy(fixture(), &src).unwrap();

    let (code, out, err) = run(&[&"inspect", &"--verify", &src]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        format!(
            "apr inspect --verify: error: {}: is a gguf file; only APR files carry checksums to verify (make one with `apr convert`)\n",
            src.display()
        )
    );

    let (code, _, err) = run(&[&"convert", &src, &"-o", &src]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "apr convert: error: {0}: refusing to overwrite the input file {0}\n",
            src.display()
        )
    );

    let (code, _, err) = run(&[&"convert", &src, &"-o", &dir.join("m.txt")]);
    assert_eq!(code, 1);
    assert!(err.contains("pass --to apr or --to gguf"), "{err}");

    let missing = dir.join("missing.gguf");
    let (code, _, err) = run(&[&"convert", &missing, &"-o", &dir.join("x.apr")]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "apr convert: error: {}: cannot read: ",
            missing.display()
        )),
        "{err}"
    );

    let junk = dir.join("junk.apr");
    std::fs::write(&junk, b"hello world").unwrap();
    let (code, _, err) = run(&[&"inspect", &"--verify", &junk]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not a model file: it starts with [68, 65, 6c, 6c]"),
        "{err}"
    );

    // --verify prints text only: with --json it is a usage error (clap exits 2).
    let (code, _, _) = run(&[&"inspect", &"--verify", &"--json", &junk]);
    assert_eq!(code, 2);
    assert_eq!(listing(&dir), ["junk.apr", "m.gguf"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
