// The information-blocking charts: denials per day by reason, and per app, vendor and kind, from the page's JSON data
// (`#chart-data`, written by the server); the table below the charts has the same figures.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var palette = ["#0b5394", "#a4161a", "#1d6b2f", "#6b4e00", "#5b2a86", "#00707a", "#8a3b12", "#3d3d3d"];
  function colour(i) { return palette[i % palette.length]; }
  new Chart(document.getElementById("by-day"), {
    type: "bar",
    data: {
      labels: data.days,
      datasets: data.reasons.map(function (reason, i) {
        return { label: reason, data: data.byDay[reason], backgroundColor: colour(i), maxBarThickness: 48 };
      }),
    },
    options: { animation: false, responsive: true, aspectRatio: 3, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
  function bars(id, labels, values, i) {
    new Chart(document.getElementById(id), {
      type: "bar",
      data: { labels: labels, datasets: [{ label: data.denialsLabel, data: values, backgroundColor: colour(i), maxBarThickness: 32 }] },
      options: { animation: false, indexAxis: "y", responsive: true, aspectRatio: 3, scales: { x: { beginAtZero: true } } },
    });
  }
  bars("by-app", data.apps, data.byApp, 0);
  bars("by-vendor", data.vendors, data.byVendor, 2);
  bars("by-kind", data.kinds, data.byKind, 4);
  document.body.setAttribute("data-charts", "drawn");
})();
