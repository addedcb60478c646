//! The bench with tiny counts, end to end on a real kcp with both operators, so the harness
//! cannot rot. No figure is asserted: only that every scenario ran every contender and that
//! the counts add up.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_bench_runs_every_scenario_for_every_contender() {
    let out = tempfile::tempdir().unwrap();
    // setpriv (util-linux) execs the bench with a parent-death signal, so that it does not
    // run on when this test binary is killed.
    let output = Command::new("setpriv")
        .args([
            "--pdeathsig",
            "KILL",
            "--",
            env!("CARGO_BIN_EXE_platform-mesh-bench"),
        ])
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the bench failed: {}\n{stdout}\n{stderr}",
        output.status
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("bench.json")).unwrap())
            .unwrap();
    let figures = report["figures"].as_array().unwrap();
    let rows: Vec<(String, String, u64, u64, usize)> = figures
        .iter()
        .map(|f| {
            (
                f["scenario"].as_str().unwrap().to_owned(),
                f["contender"].as_str().unwrap().to_owned(),
                f["total"].as_u64().unwrap(),
                f["finished"].as_u64().unwrap(),
                f["seconds"].as_array().unwrap().len(),
            )
        })
        .collect();
    let scenario_of = |s: &str| -> Vec<(&str, u64)> {
        rows.iter()
            .filter(|r| r.0 == s)
            .map(|r| (r.1.as_str(), r.2))
            .collect()
    };
    // Plan::smoke: 2 rounds; 1 org with 2 accounts; 2 accounts under the deleted org; 5 stored.
    assert_eq!(
        scenario_of("one org to Ready"),
        [
            ("Ours", 2),
            ("Upstream", 2),
            ("NarrowFloor", 2),
            ("FullPathFloor", 2)
        ]
    );
    let three = |total| {
        vec![
            ("Ours", total),
            ("Upstream", total),
            ("FullPathFloor", total),
        ]
    };
    assert_eq!(scenario_of("1 orgs × 2 accounts at once"), three(3));
    assert_eq!(scenario_of("delete an org with 2 accounts"), three(3));
    assert_eq!(scenario_of("one org with 5 Accounts stored"), three(2));
    assert_eq!(rows.len(), 13);

    for (figure, (scenario, contender, total, finished, samples)) in figures.iter().zip(&rows) {
        // Ours and the floors finish everything; upstream's count is reported as it is.
        if contender != "Upstream" {
            assert_eq!(finished, total, "{contender} in {scenario}: {stdout}");
        }
        let expected_samples = if scenario.starts_with("delete") {
            usize::from(*finished > 0)
        } else {
            *finished as usize
        };
        assert_eq!(*samples, expected_samples, "{contender} in {scenario}");
        // CPU can round to 0 clock ticks in a short scenario; memory and requests cannot be 0.
        let measured = [
            figure["cpu_seconds"].as_f64().is_some(),
            figure["peak_rss_mib"].as_f64().is_some_and(|v| v > 0.0),
            figure["requests"].as_u64().is_some_and(|v| v > 0),
        ];
        let operator = contender == "Ours" || contender == "Upstream";
        assert_eq!(
            measured, [operator; 3],
            "{contender} in {scenario}: process figures only for operators"
        );
    }

    // The table names every contender; the plot has a dot per sample.
    for name in [
        "platform-mesh-rs",
        "upstream Go v0.14.62",
        "floor: full path",
        "floor: workspace only",
    ] {
        assert!(stdout.contains(&format!("| {name} |")), "{name}: {stdout}");
    }
    let svg = std::fs::read_to_string(out.path().join("bench.svg")).unwrap();
    let dots: usize = rows.iter().map(|r| r.4).sum();
    assert_eq!(svg.matches("<circle").count(), dots);
    assert!(out.path().join("bench.md").is_file());
}
