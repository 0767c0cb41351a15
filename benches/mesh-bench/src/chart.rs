//! A hand-written SVG chart of latency percentiles per contender: one
//! panel per concurrency level, p50 → p99.9 on the x axis, latency on a
//! log y axis, one line per contender (dashed for the TLS rows, which
//! compare among themselves).

use std::fmt::Write;

use crate::contender::Contender;
use crate::report::Median;

/// The SVG stroke dash attribute for a contender's line.
fn dash(contender: &str) -> &'static str {
    if contender.parse::<Contender>().is_ok_and(Contender::is_tls) {
        r#" stroke-dasharray="6 3""#
    } else {
        ""
    }
}

const PANEL_W: f64 = 300.0;
const PANEL_H: f64 = 260.0;
const LEFT: f64 = 60.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 40.0;
const LEGEND_H: f64 = 100.0;
/// Legend entries per row.
const LEGEND_COLS: usize = 3;
const COLORS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
const LABELS: [&str; 4] = ["p50", "p90", "p99", "p99.9"];

fn percentiles(m: &Median) -> [f64; 4] {
    [m.p50_us, m.p90_us, m.p99_us, m.p999_us]
}

/// The SVG document for `ms` (medians), panels in `concurrencies` order
/// and lines in `contenders` order.
pub fn svg(ms: &[Median], contenders: &[&str], concurrencies: &[usize]) -> String {
    let values = ms.iter().flat_map(percentiles).filter(|v| *v > 0.0);
    let lo = values.clone().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = values.fold(1.0, f64::max);
    // Whole decades around the data.
    let (lo_dec, hi_dec) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let plot_h = PANEL_H - TOP - BOTTOM;
    let y_of = |v: f64| {
        TOP + plot_h * (1.0 - (v.max(1.0).log10().max(lo_dec) - lo_dec) / (hi_dec - lo_dec))
    };
    let width = LEFT + PANEL_W * concurrencies.len() as f64 + 20.0;
    let height = PANEL_H + LEGEND_H;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" font-size="14" text-anchor="middle">Latency percentiles (µs, log scale), medians of runs</text>"#,
        width / 2.0
    );
    for (pi, &n) in concurrencies.iter().enumerate() {
        let x0 = LEFT + PANEL_W * pi as f64;
        let plot_w = PANEL_W - 40.0;
        let x_of = |i: usize| x0 + 10.0 + plot_w * i as f64 / 3.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{n} in flight</text>"#,
            x0 + 10.0 + plot_w / 2.0,
            TOP - 8.0
        );
        // Grid: decades (labelled on the first panel only) and 2×, 5×.
        let mut dec = lo_dec;
        while dec <= hi_dec {
            for (mult, strong) in [(1.0, true), (2.0, false), (5.0, false)] {
                let v = mult * 10f64.powf(dec);
                if v.log10() > hi_dec + 1e-9 {
                    continue;
                }
                let y = y_of(v);
                let stroke = if strong { "#bbb" } else { "#eee" };
                let _ = writeln!(
                    s,
                    r#"<line x1="{}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{stroke}"/>"#,
                    x_of(0),
                    x_of(3)
                );
                if pi == 0 {
                    let _ = writeln!(
                        s,
                        r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#555">{v}</text>"##,
                        x0 + 4.0,
                        y + 4.0
                    );
                }
            }
            dec += 1.0;
        }
        for (i, label) in LABELS.iter().enumerate() {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{label}</text>"##,
                x_of(i),
                PANEL_H - BOTTOM + 18.0
            );
        }
        for (ci, c) in contenders.iter().enumerate() {
            let Some(m) = ms.iter().find(|m| m.contender == *c && m.concurrency == n) else {
                continue;
            };
            let color = COLORS[ci % COLORS.len()];
            let points: Vec<String> = percentiles(m)
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x_of(i), y_of(*v)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{}/>"#,
                points.join(" "),
                dash(c)
            );
            for p in &points {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
            }
        }
    }
    for (ci, c) in contenders.iter().enumerate() {
        let y = PANEL_H + 10.0 + 18.0 * (ci / LEGEND_COLS) as f64;
        let x = LEFT + 200.0 * (ci % LEGEND_COLS) as f64;
        let color = COLORS[ci % COLORS.len()];
        let _ = writeln!(
            s,
            r#"<line x1="{x}" x2="{}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="3"{}/><text x="{}" y="{}">{c}</text>"#,
            x + 24.0,
            dash(c),
            x + 30.0,
            y + 4.0
        );
    }
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_polyline_per_contender_and_panel() {
        let m = |c: &str, n| Median {
            contender: c.into(),
            concurrency: n,
            runs: 1,
            rps: 1.0,
            p50_us: 100.0,
            p90_us: 200.0,
            p99_us: 400.0,
            p999_us: 900.0,
            cpu_s_per_10k: 1.0,
            peak_rss_kib: 1.0,
            errors: 0,
            proxy_cpu_s_per_10k: None,
        };
        let ms = vec![
            m("tonic", 1),
            m("tonic", 16),
            m("mesh-1ep", 1),
            m("mesh-1ep-mtls", 1),
        ];
        let svg = svg(&ms, &["tonic", "mesh-1ep", "mesh-1ep-mtls"], &[1, 16]);
        assert_eq!(svg.matches("<polyline").count(), 4);
        // The TLS row is dashed, in the panel and in the legend.
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
