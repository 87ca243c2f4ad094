// Draws the charts a page declares in <script type="application/json" class="chart-data"> blocks,
// and keeps a livestream page's numbers current by polling its JSON endpoint.
(function () {
  "use strict";
  const palette = ["#1b7f4c", "#e07a1f", "#2f6db5", "#9b59b6", "#c0392b", "#16a085"];
  const charts = {};

  if (typeof Chart !== "undefined") Chart.defaults.locale = "vi-VN";

  function draw(block) {
    const spec = JSON.parse(block.textContent);
    const canvas = document.getElementById(spec.canvas);
    if (!canvas || typeof Chart === "undefined") return;
    const doughnut = spec.type === "doughnut";
    charts[spec.canvas] = new Chart(canvas, {
      type: spec.type,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (set, i) {
          return Object.assign(
            doughnut
              ? { backgroundColor: palette, borderColor: "#fff" }
              : { backgroundColor: palette[i % palette.length], borderColor: palette[i % palette.length] },
            set
          );
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: spec.horizontal ? "y" : "x",
        plugins: { legend: { display: doughnut || spec.datasets.length > 1, position: "bottom" } },
        scales: doughnut ? {} : { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }

  const number = new Intl.NumberFormat("vi-VN");
  const formats = {
    number: function (v) { return number.format(v); },
    vnd: function (v) { return number.format(v) + " ₫"; },
    kg: function (v) { return number.format(v) + " kg"; },
    text: function (v) { return v === null || v === undefined ? "–" : String(v); },
    clock: function (v) { return v ? minuteLabel(v) : "–"; },
  };

  function cell(text, numeric) {
    const td = document.createElement("td");
    if (numeric) td.className = "n";
    td.textContent = text;
    return td;
  }

  function fillProducts(tbody, products) {
    if (!tbody || !products.length) return;
    tbody.replaceChildren.apply(tbody, products.map(function (p) {
      const tr = document.createElement("tr");
      tr.dataset.sku = p.sku;
      tr.append(cell(p.name), cell(formats.number(p.orders), true), cell(formats.kg(p.kg_sold), true), cell(formats.vnd(p.gmv_vnd), true));
      return tr;
    }));
  }

  function minuteLabel(iso) {
    return new Date(iso).toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit", timeZone: "Asia/Ho_Chi_Minh" });
  }

  function refresh(root) {
    fetch(root.dataset.poll, { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (kpis) {
        if (!kpis) return;
        root.querySelectorAll("[data-kpi]").forEach(function (el) {
          const value = kpis[el.dataset.kpi];
          if (value === undefined) return;
          el.dataset.value = value === null ? "" : String(value);
          el.textContent = (formats[el.dataset.format] || formats.text)(value);
        });
        const chart = charts["per-minute"];
        if (chart) {
          chart.data.labels = kpis.per_minute.map(function (m) { return minuteLabel(m.minute); });
          chart.data.datasets[0].data = kpis.per_minute.map(function (m) { return m.orders; });
          chart.update();
        }
        fillProducts(document.querySelector("#best-sellers tbody"), kpis.best_sellers || []);
        const stamp = document.getElementById("updated-at");
        if (stamp) stamp.textContent = new Date().toLocaleTimeString("vi-VN", { timeZone: "Asia/Ho_Chi_Minh" });
        document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
      })
      .catch(function () { /* a dropped connection: the next poll tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("script.chart-data").forEach(draw);
    const live = document.querySelector("[data-poll]");
    if (live) {
      const every = Number(live.dataset.pollSeconds || 5) * 1000;
      setInterval(function () { refresh(live); }, every);
    }
  });
})();
