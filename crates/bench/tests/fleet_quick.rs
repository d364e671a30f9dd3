//! The fleet benchmark's quick mode, run by `cargo test --workspace` (CI): it starts a durable
//! throwaway PostgreSQL cluster, the `till-fleet`, `till-agent` and `till-sandbox` binaries of
//! this build, and runs every part of `till-bench fleet` with small counts (about 10 s), so the
//! benchmark cannot rot between full runs. It checks that the run completed and its figures are
//! sane, not how fast anything is.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn fleet_benchmark_quick_mode_runs_end_to_end() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_till-bench"));
    let bin_dir = bench.parent().expect("target dir").to_path_buf();
    for b in ["till-fleet", "till-agent", "till-sandbox"] {
        assert!(bin_dir.join(b).is_file(), "{b} missing in {}: run `cargo build --workspace` first (scripts/test.sh does)", bin_dir.display());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("results");
    let out = Command::new(&bench)
        .args(["fleet", "--quick", "--bin-dir"])
        .arg(&bin_dir)
        .arg("--results")
        .arg(&results)
        .arg("--work")
        .arg(dir.path().join("work"))
        .output()
        .expect("running till-bench");
    assert!(out.status.success(), "till-bench fleet --quick failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(results.join("fleet.json")).expect("fleet.json")).expect("json");
    assert_eq!(r["quick"], true);
    assert!(r["ingest"]["fleet_rate"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    assert!(r["ingest"]["copy_rate"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    let queries = r["dashboard"][0]["queries"].as_array().expect("queries");
    assert_eq!(queries.len(), 7, "every dashboard call timed");
    for q in queries {
        assert!(q["latency"]["count"].as_u64().unwrap_or(0) > 0, "{q}");
        assert!(q["plan"].as_str().unwrap_or("").contains("Query Text"), "a plan was logged for {}", q["name"]);
    }
    let order = queries.iter().find(|q| q["name"] == "search by order id").expect("order search");
    assert_eq!(order["rows"], 1, "the searched order exists exactly once");
    assert!(r["lag"]["count"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(r["on_off"]["ratio_p50"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
}
