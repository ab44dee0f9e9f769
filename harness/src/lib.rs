//! apr-harness: YAML falsification contracts compiled into test trials that write evidence.
