//! disksnap's API-level benchmark (performance.md, last row: DescribeSnapshots on 100 000
//! snapshots, filter + page of 100: p99 <= 5 ms, >= 5 000 signed requests/s on 2 cores).
//!
//!     disksnap-apibench seed DATA [--snapshots 100000] [--volumes 1000] [--database-url postgres://…]
//!     disksnap-apibench load DATA --addr 127.0.0.1:PORT [--concurrency 1,4,16,64] [--secs 5]
//!         [--warmup 1] [--runs 1] [--server-pid PID] [--out results.json] [--dialect qingcloud]
//!         [--writes on|off|both] [--write-rate 20] [--write-p99-ms 50]
//!
//! `bench/api.sh` builds, seeds, starts `disksnap serve` and runs both; see bench/README.md.

mod load;
mod seed;
mod sign;
mod writes;

use std::path::PathBuf;

use anyhow::{anyhow, bail};

fn usage() -> ! {
    eprintln!(
        "usage: disksnap-apibench seed DATA [--snapshots N] [--volumes N] [--database-url URL]\n       \
         disksnap-apibench load DATA --addr HOST:PORT [--concurrency 1,4,16,64] [--secs 5] [--warmup 1] \
         [--runs 1] [--server-pid PID] [--out FILE] [--p99-ms 5] [--rps 5000] \
         [--dialect qingcloud|aliyun|tencent|tencent3|cinder|evs] [--writes on|off|both] [--write-rate 20] \
         [--write-p99-ms 50]"
    );
    std::process::exit(2)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, data) = match (args.first(), args.get(1)) {
        (Some(c), Some(d)) if !d.starts_with("--") => (c.as_str(), PathBuf::from(d)),
        _ => usage(),
    };
    let mut flags = std::collections::HashMap::new();
    let mut it = args[2..].iter();
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else { bail!("unexpected argument {k:?}") };
        let v = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
        flags.insert(name.to_string(), v.clone());
    }
    let num = |k: &str, d: f64| -> anyhow::Result<f64> {
        flags.get(k).map_or(Ok(d), |v| v.parse().map_err(|_| anyhow!("--{k} {v:?} is not a number")))
    };
    // One thread: the client shares the 2 cores with the server and should take little of them.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cmd {
        "seed" => {
            let db = flags.get("database-url").map(String::as_str);
            rt.block_on(seed::run(&data, num("snapshots", 100_000.0)? as usize, num("volumes", 1000.0)? as usize, db))
        }
        "load" => {
            let concurrency = flags
                .get("concurrency")
                .map_or("1,4,16,64", String::as_str)
                .split(',')
                .map(|c| c.trim().parse::<usize>().map_err(|_| anyhow!("--concurrency {c:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let dialect = flags.get("dialect").map_or("qingcloud", String::as_str);
            let o = load::Opts {
                dialect: load::Dialect::parse(dialect).ok_or_else(|| {
                    let all: Vec<&str> = load::Dialect::ALL.iter().map(|d| d.name()).collect();
                    anyhow!("--dialect {dialect:?}: one of {}", all.join(", "))
                })?,
                addr: flags.get("addr").cloned().ok_or_else(|| anyhow!("--addr is required"))?,
                data,
                concurrency,
                secs: num("secs", 5.0)?,
                warmup: num("warmup", 1.0)?,
                runs: num("runs", 1.0)?.max(1.0) as usize,
                server_pid: flags.get("server-pid").and_then(|p| p.parse().ok()),
                out: flags.get("out").map(PathBuf::from),
                p99_ms: num("p99-ms", 5.0)?,
                rps: num("rps", 5000.0)?,
                writes: match flags.get("writes").map_or("both", String::as_str) {
                    "off" => vec![false],
                    "on" => vec![true],
                    "both" => vec![false, true],
                    w => bail!("--writes {w:?}: on, off or both"),
                },
                write_rate: num("write-rate", writes::DEFAULT_RATE)?,
                write_p99_ms: num("write-p99-ms", 50.0)?,
            };
            let pass = rt.block_on(tokio::task::LocalSet::new().run_until(load::run(o)))?;
            // A MISS is a result, not an error: exit 0 either way, 3 only to let scripts tell.
            if !pass && std::env::var_os("APIBENCH_FAIL_ON_MISS").is_some() {
                std::process::exit(3);
            }
            Ok(())
        }
        _ => usage(),
    }
}
