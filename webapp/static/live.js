// The organizer's live page: while the session is live, refresh the figures, the chart and
// who is watching every 15 seconds.
(() => {
  "use strict";
  const card = document.querySelector("[data-live-url]");
  if (!card || card.dataset.status !== "live") return;
  const svgNS = "http://www.w3.org/2000/svg";

  function draw(samples) {
    const svg = card.querySelector("[data-chart]");
    const [width, height] = [600, 160];
    const top = Math.max(1, ...samples.map((sample) => sample[1]));
    const step = width / Math.max(1, samples.length - 1);
    const points = samples
      .map((sample, index) => `${(index * step).toFixed(1)},${(height - 4 - (sample[1] * (height - 8)) / top).toFixed(1)}`)
      .join(" ");
    let line = svg.querySelector("polyline");
    if (!line) {
      line = document.createElementNS(svgNS, "polyline");
      svg.appendChild(line);
    }
    line.setAttribute("points", points);
  }

  function refresh() {
    fetch(card.dataset.liveUrl, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((live) => {
        if (!live) return;
        for (const name of ["now", "peak", "total"]) {
          card.querySelector(`[data-figure="${name}"]`).textContent = live[name];
        }
        draw(live.samples);
        document.querySelector("[data-watching]").textContent = live.watching.join("、") || "—";
        if (live.status !== "live") window.location.reload();
      })
      .catch(() => {});
  }
  setInterval(refresh, 15000);
})();
