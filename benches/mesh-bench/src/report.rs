//! Turns the cells of several matrix runs into the report: per-cell
//! medians, their [`Ratios`] to the baselines (bare tonic, `balance_list`,
//! the HAProxy hop, and `tonic-tls` for the TLS rows), the Markdown tables
//! and the JSON written to `target/bench/load.json` (settings, medians,
//! ratios and every cell of every run).
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
    /// The proxy's CPU seconds per 10k requests (HAProxy row only).
    #[serde(default)]
    pub proxy_cpu_s_per_10k: Option<f64>,
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
                proxy_cpu_s_per_10k: {
                    let p: Vec<f64> = these.iter().filter_map(|r| r.proxy_cpu_s_per_10k).collect();
                    (!p.is_empty()).then(|| median(p))
                },
            });
        }
    }
    out
}

fn find(ms: &[Median], contender: Contender, n: usize) -> Option<&Median> {
    ms.iter()
        .find(|m| m.contender == contender.name() && m.concurrency == n)
}

/// One cell's comparisons with the baselines measured at the same
/// concurrency in the same run set. `None` where the baseline did not run
/// (or, for the `×tonic-tls` ones, the row is not a TLS row).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    /// The contender.
    pub contender: String,
    /// Calls in flight.
    pub concurrency: usize,
    /// req/s ÷ bare tonic's.
    pub rps_x_tonic: Option<f64>,
    /// req/s ÷ balance_list's.
    pub rps_x_bl: Option<f64>,
    /// req/s ÷ the HAProxy hop's.
    pub rps_x_haproxy: Option<f64>,
    /// p50 − bare tonic's p50, µs.
    pub p50_minus_tonic_us: Option<f64>,
    /// p50 ÷ the HAProxy hop's p50.
    pub p50_x_haproxy: Option<f64>,
    /// p99 ÷ balance_list's.
    pub p99_x_bl: Option<f64>,
    /// p99.9 ÷ balance_list's.
    pub p999_x_bl: Option<f64>,
    /// Client CPU per request ÷ bare tonic's.
    pub cpu_x_tonic: Option<f64>,
    /// TLS rows: req/s ÷ tonic-tls's.
    pub rps_x_tonic_tls: Option<f64>,
    /// TLS rows: p50 − tonic-tls's p50, µs.
    pub p50_minus_tonic_tls_us: Option<f64>,
    /// TLS rows: p99 ÷ tonic-tls's.
    pub p99_x_tonic_tls: Option<f64>,
    /// TLS rows: client CPU per request ÷ tonic-tls's.
    pub cpu_x_tonic_tls: Option<f64>,
}

fn div(x: f64, base: Option<f64>) -> Option<f64> {
    base.filter(|b| *b > 0.0 && x.is_finite()).map(|b| x / b)
}

fn minus(x: f64, base: Option<f64>) -> Option<f64> {
    base.filter(|b| b.is_finite() && x.is_finite())
        .map(|b| x - b)
}

/// The [`Ratios`] of every median, in the order given.
pub fn ratios(ms: &[Median]) -> Vec<Ratios> {
    ms.iter()
        .map(|m| {
            let n = m.concurrency;
            let base = |c: Contender, f: fn(&Median) -> f64| find(ms, c, n).map(f);
            let tls_row = m
                .contender
                .parse::<Contender>()
                .is_ok_and(Contender::is_tls);
            let tls = |f: fn(&Median) -> f64| base(Contender::TonicTls, f).filter(|_| tls_row);
            Ratios {
                contender: m.contender.clone(),
                concurrency: n,
                rps_x_tonic: div(m.rps, base(Contender::Tonic, |b| b.rps)),
                rps_x_bl: div(m.rps, base(Contender::BalanceList, |b| b.rps)),
                rps_x_haproxy: div(m.rps, base(Contender::Haproxy, |b| b.rps)),
                p50_minus_tonic_us: minus(m.p50_us, base(Contender::Tonic, |b| b.p50_us)),
                p50_x_haproxy: div(m.p50_us, base(Contender::Haproxy, |b| b.p50_us)),
                p99_x_bl: div(m.p99_us, base(Contender::BalanceList, |b| b.p99_us)),
                p999_x_bl: div(m.p999_us, base(Contender::BalanceList, |b| b.p999_us)),
                cpu_x_tonic: div(m.cpu_s_per_10k, base(Contender::Tonic, |b| b.cpu_s_per_10k)),
                rps_x_tonic_tls: div(m.rps, tls(|b| b.rps)),
                p50_minus_tonic_tls_us: minus(m.p50_us, tls(|b| b.p50_us)),
                p99_x_tonic_tls: div(m.p99_us, tls(|b| b.p99_us)),
                cpu_x_tonic_tls: div(m.cpu_s_per_10k, tls(|b| b.cpu_s_per_10k)),
            }
        })
        .collect()
}

fn x(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×"))
        .unwrap_or_else(|| "–".to_owned())
}

fn delta(d: Option<f64>) -> String {
    d.map(|d| format!("{d:+.0}"))
        .unwrap_or_else(|| "–".to_owned())
}

/// The Markdown report: one table per concurrency level, then, where
/// they ran, the TLS rows against `tonic-tls` and HAProxy's own CPU.
/// Ratios are to bare tonic ("×tonic"), to `balance_list` ("×bl") and to
/// the HAProxy hop ("×haproxy") at the same concurrency; p50 also shows
/// the difference to bare tonic in µs.
pub fn markdown(ms: &[Median], concurrencies: &[usize]) -> String {
    let rs = ratios(ms);
    let mut s = String::new();
    for &n in concurrencies {
        s += &format!("\n**{n} in flight**\n\n");
        s += "| contender | req/s | ×tonic | ×bl | ×haproxy | p50 µs | Δp50 vs tonic | p50 ×haproxy | p90 µs | p99 µs | ×bl | p99.9 µs | ×bl | CPU s/10k req | ×tonic | RSS MiB | errors |\n";
        s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        let rows = ms.iter().zip(&rs).filter(|(m, _)| m.concurrency == n);
        for (m, r) in rows.clone() {
            s += &format!(
                "| {} | {:.0} | {} | {} | {} | {:.0} | {} | {} | {:.0} | {:.0} | {} | {:.0} | {} | {:.3} | {} | {:.1} | {} |\n",
                describe(&m.contender),
                m.rps,
                x(r.rps_x_tonic),
                x(r.rps_x_bl),
                x(r.rps_x_haproxy),
                m.p50_us,
                delta(r.p50_minus_tonic_us),
                x(r.p50_x_haproxy),
                m.p90_us,
                m.p99_us,
                x(r.p99_x_bl),
                m.p999_us,
                x(r.p999_x_bl),
                m.cpu_s_per_10k,
                x(r.cpu_x_tonic),
                m.peak_rss_kib / 1024.0,
                m.errors,
            );
        }
        let tls: Vec<_> = rows
            .clone()
            .filter(|(_, r)| r.rps_x_tonic_tls.is_some())
            .collect();
        if tls.len() > 1 {
            s += &format!("\nmTLS against bare tonic with TLS (`tonic-tls`), {n} in flight:\n\n");
            s += "| contender | req/s ×tonic-tls | Δp50 µs | p99 ×tonic-tls | CPU ×tonic-tls |\n";
            s += "|---|---:|---:|---:|---:|\n";
            for (m, r) in tls {
                s += &format!(
                    "| {} | {} | {} | {} | {} |\n",
                    describe(&m.contender),
                    x(r.rps_x_tonic_tls),
                    delta(r.p50_minus_tonic_tls_us),
                    x(r.p99_x_tonic_tls),
                    x(r.cpu_x_tonic_tls),
                );
            }
        }
        let tonic = find(ms, Contender::Tonic, n).map(|t| t.cpu_s_per_10k);
        let proxy = rows.filter_map(|(m, _)| m.proxy_cpu_s_per_10k.map(|p| (m, p)));
        for (m, p) in proxy {
            let total = m.cpu_s_per_10k + p;
            s += &format!(
                "\nHAProxy's own CPU, {n} in flight: {p:.3} s/10k req; client + proxy {total:.3} s/10k req ({} bare tonic's).\n",
                x(div(total, tonic)),
            );
        }
    }
    s
}

fn describe(name: &str) -> &str {
    name.parse::<Contender>()
        .map(Contender::describe)
        .unwrap_or(name)
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// How the matrix was run.
    pub settings: serde_json::Value,
    /// Medians per cell.
    pub medians: &'a [Median],
    /// The medians' ratios to the baselines.
    pub ratios: Vec<Ratios>,
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
        ratios: ratios(ms),
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
            proxy_cpu_s_per_10k: None,
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
        assert!(md.contains("| 1900 | 0.95× | – | – |"), "{md}");
    }

    fn at(c: &str, n: usize, rps: f64, p50: f64, cpu: f64) -> (usize, CellResult) {
        let mut r = cell(c, n, rps);
        r.p50_us = p50;
        r.p99_us = 2.0 * p50;
        r.cpu_s_per_10k = cpu;
        (0, r)
    }

    #[test]
    fn ratios_to_haproxy_and_to_tonic_tls() {
        let mut proxy = at("haproxy", 16, 5000.0, 400.0, 1.0);
        proxy.1.proxy_cpu_s_per_10k = Some(0.5);
        let cells = vec![
            at("tonic", 16, 10000.0, 200.0, 0.5),
            at("balance_list", 16, 8000.0, 250.0, 0.5),
            proxy,
            at("mesh-3ep", 16, 8000.0, 240.0, 0.6),
            at("tonic-tls", 16, 6000.0, 300.0, 1.0),
            at("mesh-1ep-mtls", 16, 5400.0, 330.0, 1.2),
        ];
        let order = [
            Contender::Tonic,
            Contender::BalanceList,
            Contender::Haproxy,
            Contender::Mesh3,
            Contender::TonicTls,
            Contender::Mesh1Mtls,
        ];
        let ms = medians(&cells, &order, &[16]);
        let rs = ratios(&ms);
        let mesh = &rs[3];
        assert_eq!(mesh.contender, "mesh-3ep");
        assert_eq!(mesh.rps_x_haproxy, Some(1.6));
        assert_eq!(mesh.p50_x_haproxy, Some(0.6));
        assert_eq!(mesh.rps_x_bl, Some(1.0));
        assert_eq!(mesh.p50_minus_tonic_us, Some(40.0));
        // Plaintext rows are not compared with tonic-tls.
        assert_eq!(mesh.rps_x_tonic_tls, None);
        let mtls = &rs[5];
        assert_eq!(mtls.rps_x_tonic_tls, Some(0.9));
        assert_eq!(mtls.p50_minus_tonic_tls_us, Some(30.0));
        assert_eq!(mtls.p99_x_tonic_tls, Some(1.1));
        assert_eq!(mtls.cpu_x_tonic_tls, Some(1.2));
        assert_eq!(rs[4].rps_x_tonic_tls, Some(1.0));
        assert_eq!(ms[2].proxy_cpu_s_per_10k, Some(0.5));

        let md = markdown(&ms, &[16]);
        assert!(md.contains("mTLS against bare tonic with TLS"), "{md}");
        assert!(md.contains("| 0.90× | +30 | 1.10× | 1.20× |"), "{md}");
        assert!(
            md.contains("client + proxy 1.500 s/10k req (3.00× bare tonic's)"),
            "{md}"
        );
        let json = json(serde_json::json!({}), &ms, &cells);
        assert_eq!(json["ratios"][3]["rps_x_haproxy"], 1.6);
        assert_eq!(json["cells"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn missing_baselines_give_dashes() {
        let cells = vec![at("mesh-1ep", 1, 4000.0, 200.0, 1.0)];
        let ms = medians(&cells, &[Contender::Mesh1], &[1]);
        assert_eq!(
            ratios(&ms)[0],
            Ratios {
                contender: "mesh-1ep".into(),
                concurrency: 1,
                ..Default::default()
            }
        );
        assert!(!markdown(&ms, &[1]).contains("mTLS against"));
    }
}
