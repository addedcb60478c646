//! Bounded mutation fuzzing of the DSL parser: byte flips, truncations, range
//! deletions and duplications, and token shuffles of every valid test model.
//! The parser must never panic and must return either a model or an error
//! with a position inside the input. Bounded by iteration count, not time.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use support::{data_dir, sorted_entries};

const ITERATIONS_PER_SEED: usize = 400;

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next() % bound as u64) as usize
        }
    }
}

/// Bytes that matter to the grammar, so flips hit interesting paths.
const INTERESTING: &[u8] = b" \t\n\r#:,[]()<>{}*._-/$\"'\\0123456789azAZ\xc3\xa9";

fn mutate(seed: &str, rng: &mut Rng) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        let len = bytes.len();
        match rng.below(5) {
            0 if len > 0 => {
                let at = rng.below(len);
                bytes[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 => bytes.truncate(rng.below(len + 1)),
            2 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.below(16)).min(len);
                bytes.drain(start..end);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.below(32)).min(len);
                let copy = bytes[start..end].to_vec();
                let at = rng.below(len);
                bytes.splice(at..at, copy);
            }
            _ => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut words: Vec<&str> = text.split(' ').collect();
                if words.len() > 1 {
                    let (a, b) = (rng.below(words.len()), rng.below(words.len()));
                    words.swap(a, b);
                }
                bytes = words.join(" ").into_bytes();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_models_never_panic() {
    let mut seeds = Vec::new();
    for dir in ["models", "platform-mesh"] {
        for path in sorted_entries(&data_dir().join(dir)) {
            if path.extension().is_some_and(|e| e == "fga") {
                seeds.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let mut rng = Rng(0x5eed_f00d_cafe_beef);
    let (mut accepted, mut rejected) = (0usize, 0usize);
    for seed in &seeds {
        for _ in 0..ITERATIONS_PER_SEED {
            let input = mutate(seed, &mut rng);
            let result = catch_unwind(AssertUnwindSafe(|| fga::dsl::parse(&input)));
            match result {
                Err(_) => panic!("parser panicked on input {input:?}"),
                Ok(Ok(_)) => accepted += 1,
                Ok(Err(error)) => {
                    rejected += 1;
                    let lines = input.split('\n').count().max(1);
                    assert!(
                        error.line() >= 1 && error.line() <= lines && error.column() >= 1,
                        "error position {}:{} outside input of {lines} lines: {error}\n{input:?}",
                        error.line(),
                        error.column()
                    );
                }
            }
        }
    }
    assert!(
        rejected > 0 && accepted > 0,
        "accepted {accepted}, rejected {rejected}"
    );
}

#[test]
fn pathological_inputs_are_rejected_not_crashing() {
    let deep = format!(
        "model\n  schema 1.1\ntype d\n  relations\n    define v: {}a{}\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    for input in [
        deep,
        "\u{0}".repeat(1000),
        "(".repeat(10_000),
        "condition".repeat(1000),
    ] {
        assert!(fga::dsl::parse(&input).is_err());
    }
}
