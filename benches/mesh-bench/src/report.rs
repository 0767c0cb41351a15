//! Turns the cells of several matrix runs into the report: per-cell
//! medians, the Markdown table with ratios to bare tonic and to
//! `balance_list`, and the JSON written to `target/bench/load.json`.
//!
//! The chart lives in [`chart`](crate::chart).

use serde::{Deserialize, Serialize};

use crate::client::CellResult;
use crate::contender::Contender;

/// The median of every metric of one (contender, concurrency) cell over
/// the runs (each metric's median taken on its own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Median {
    /// The contender.
    pub contender: String,
    /// Calls in flight.
    pub concurrency: usize,
    /// Runs the median is over.
    pub runs: usize,
    /// Requests per second.
    pub rps: f64,
    /// p50, µs.
    pub p50_us: f64,
    /// p90, µs.
    pub p90_us: f64,
    /// p99, µs.
    pub p99_us: f64,
    /// p99.9, µs.
    pub p999_us: f64,
    /// Client CPU seconds per 10k requests.
    pub cpu_s_per_10k: f64,
    /// Client peak RSS, KiB.
    pub peak_rss_kib: f64,
    /// Errors summed over the runs.
    pub errors: u64,
}

/// The median of `xs` (mean of the middle two for an even count).
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// Medians per (contender, concurrency), in the order given.
pub fn medians(
    cells: &[(usize, CellResult)],
    contenders: &[Contender],
    concurrencies: &[usize],
) -> Vec<Median> {
    let mut out = Vec::new();
    for c in contenders {
        for &n in concurrencies {
            let these: Vec<&CellResult> = cells
                .iter()
                .map(|(_, r)| r)
                .filter(|r| r.contender == c.name() && r.concurrency == n)
                .collect();
            if these.is_empty() {
                continue;
            }
            let m = |f: fn(&CellResult) -> f64| median(these.iter().map(|r| f(r)).collect());
            out.push(Median {
                contender: c.name().to_owned(),
                concurrency: n,
                runs: these.len(),
                rps: m(|r| r.rps),
                p50_us: m(|r| r.p50_us),
                p90_us: m(|r| r.p90_us),
                p99_us: m(|r| r.p99_us),
                p999_us: m(|r| r.p999_us),
                cpu_s_per_10k: m(|r| r.cpu_s_per_10k),
                peak_rss_kib: m(|r| r.peak_rss_kib as f64),
                errors: these.iter().map(|r| r.errors).sum(),
            });
        }
    }
    out
}

fn find(ms: &[Median], contender: Contender, n: usize) -> Option<&Median> {
    ms.iter()
        .find(|m| m.contender == contender.name() && m.concurrency == n)
}

fn ratio(x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 && x.is_finite() => format!("{:.2}×", x / b),
        _ => "–".to_owned(),
    }
}

/// The Markdown report: one table per concurrency level. Ratios are to
/// bare tonic ("×tonic") and to `balance_list` ("×bl") at the same
/// concurrency; p50 also shows the difference to bare tonic in µs.
pub fn markdown(ms: &[Median], concurrencies: &[usize]) -> String {
    let mut s = String::new();
    for &n in concurrencies {
        let tonic = find(ms, Contender::Tonic, n);
        let bl = find(ms, Contender::BalanceList, n);
        s += &format!("\n**{n} in flight**\n\n");
        s += "| contender | req/s | ×tonic | ×bl | p50 µs | Δp50 vs tonic | p90 µs | p99 µs | ×bl | p99.9 µs | ×bl | CPU s/10k req | ×tonic | RSS MiB | errors |\n";
        s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for m in ms.iter().filter(|m| m.concurrency == n) {
            let describe = m
                .contender
                .parse::<Contender>()
                .map(Contender::describe)
                .unwrap_or(&m.contender);
            let dp50 = tonic
                .map(|t| format!("{:+.0}", m.p50_us - t.p50_us))
                .unwrap_or_else(|| "–".into());
            s += &format!(
                "| {describe} | {:.0} | {} | {} | {:.0} | {dp50} | {:.0} | {:.0} | {} | {:.0} | {} | {:.3} | {} | {:.1} | {} |\n",
                m.rps,
                ratio(m.rps, tonic.map(|t| t.rps)),
                ratio(m.rps, bl.map(|b| b.rps)),
                m.p50_us,
                m.p90_us,
                m.p99_us,
                ratio(m.p99_us, bl.map(|b| b.p99_us)),
                m.p999_us,
                ratio(m.p999_us, bl.map(|b| b.p999_us)),
                m.cpu_s_per_10k,
                ratio(m.cpu_s_per_10k, tonic.map(|t| t.cpu_s_per_10k)),
                m.peak_rss_kib / 1024.0,
                m.errors,
            );
        }
    }
    s
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// How the matrix was run.
    pub settings: serde_json::Value,
    /// Medians per cell.
    pub medians: &'a [Median],
    /// Every cell of every run.
    pub cells: Vec<serde_json::Value>,
}

/// Builds the JSON report.
pub fn json(
    settings: serde_json::Value,
    ms: &[Median],
    cells: &[(usize, CellResult)],
) -> serde_json::Value {
    let cells = cells
        .iter()
        .map(|(run, c)| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["run"] = (*run + 1).into();
            v
        })
        .collect();
    serde_json::to_value(JsonReport {
        settings,
        medians: ms,
        cells,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    fn cell(contender: &str, n: usize, rps: f64) -> CellResult {
        CellResult {
            contender: contender.into(),
            concurrency: n,
            requests: 1,
            errors: 0,
            seconds: 1.0,
            rps,
            p50_us: 100.0,
            p90_us: 150.0,
            p99_us: 200.0,
            p999_us: 300.0,
            cpu_s_per_10k: 1.0,
            peak_rss_kib: 2048,
        }
    }

    #[test]
    fn table_has_ratios_to_tonic() {
        let cells = vec![
            (0, cell("tonic", 1, 1000.0)),
            (1, cell("tonic", 1, 3000.0)),
            (2, cell("tonic", 1, 2000.0)),
            (0, cell("mesh-1ep", 1, 1900.0)),
        ];
        let ms = medians(&cells, &[Contender::Tonic, Contender::Mesh1], &[1]);
        assert_eq!(ms[0].rps, 2000.0);
        let md = markdown(&ms, &[1]);
        assert!(md.contains("| 1900 | 0.95× |"), "{md}");
    }
}
