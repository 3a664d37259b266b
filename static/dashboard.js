// The dashboard's money chart (a file, not an inline script: the CSP allows only our files).
(function () {
  const canvas = document.getElementById("money-chart");
  const data = document.getElementById("chart-data");
  if (!canvas || !data || typeof Chart === "undefined") return;
  const rows = JSON.parse(data.textContent);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: rows.map(r => r.label || r.day),
      datasets: [
        {label: canvas.dataset.payments, data: rows.map(r => Number(r.payments)), backgroundColor: "#3a9d5d"},
        {label: canvas.dataset.charges, data: rows.map(r => Number(r.charges)), backgroundColor: "#d9822b"}
      ]
    },
    // numbers on the axes and in the tooltips as the page's language writes them
    options: {animation: false, responsive: true, locale: document.documentElement.lang || "ru"}
  });
})();
