//! Benchmark: how fast the DSL parser reads the largest models (run by `cargo xtask bench`).

use std::path::Path;
use std::time::Instant;

use fga::builder::{Model, TypeDef, computed, direct, from};

fn time_parse(label: &str, text: &str) -> Result<(), fga::dsl::DslError> {
    const ROUNDS: u32 = 20;
    fga::dsl::parse_model(text)?;
    let start = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(fga::dsl::parse_model(std::hint::black_box(text))?);
    }
    let per_parse = start.elapsed() / ROUNDS;
    let mib_per_s = text.len() as f64 / per_parse.as_secs_f64() / (1024.0 * 1024.0);
    println!(
        "fga parse [{label}]: {} bytes, {} lines in {per_parse:?} ({mib_per_s:.1} MiB/s)",
        text.len(),
        text.lines().count()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut largest: Option<(u64, std::path::PathBuf)> = None;
    for dir in ["models", "platform-mesh"] {
        for entry in std::fs::read_dir(data.join(dir))? {
            let path = entry?.path();
            let is_error_case = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("err-"));
            let size = std::fs::metadata(&path)?.len();
            if !is_error_case && largest.as_ref().is_none_or(|(s, _)| size > *s) {
                largest = Some((size, path));
            }
        }
    }
    if let Some((_, path)) = largest {
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        time_parse(&label, &std::fs::read_to_string(&path)?)?;
    }

    // 100 types (the server's default limit) with 30 relations each: about the 256 KiB
    // model size limit.
    let synthetic = (0..100).fold(Model::new(), |model, t| {
        let type_def = (0..30).fold(TypeDef::new(format!("type_{t}")), |type_def, r| {
            type_def.relation(
                format!("relation_{r}"),
                direct(["user", "user:*", "group#member"])
                    .or(computed("owner"))
                    .or(from("viewer", "parent")),
            )
        });
        model.type_def(type_def)
    });
    time_parse("synthetic 100 types x 30 relations", &synthetic.to_dsl()?)?;
    Ok(())
}
