// The session player: hls.js (vendored) where the browser has Media Source Extensions, its
// own HLS otherwise (iPhone), a plain MP4 for replays. It tells the app who is watching:
// "join" when the video starts playing, a heartbeat every data-heartbeat-seconds while it
// plays and the page is visible, "leave" when it is paused, hidden or closed. A paused or
// hidden tab is not watching.
(() => {
  "use strict";

  function heartbeats(box, video) {
    const url = box.dataset.heartbeat;
    const token = box.dataset.token;
    const seconds = Number(box.dataset.heartbeatSeconds) || 30;
    let timer = null;

    function send(kind, beacon) {
      const body = JSON.stringify({ token, kind });
      if (beacon && navigator.sendBeacon) {
        navigator.sendBeacon(url, new Blob([body], { type: "application/json" }));
        return;
      }
      fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
        credentials: "same-origin",
        keepalive: true,
      }).catch(() => {});
    }
    const watching = () =>
      !video.paused && !video.ended && document.visibilityState === "visible";
    function start() {
      if (timer || !watching()) return;
      send("join");
      timer = setInterval(() => (watching() ? send("beat") : stop()), seconds * 1000);
    }
    function stop() {
      if (!timer) return;
      clearInterval(timer);
      timer = null;
      send("leave", true);
    }
    video.addEventListener("playing", start);
    video.addEventListener("pause", stop);
    video.addEventListener("ended", stop);
    document.addEventListener("visibilitychange", () =>
      document.visibilityState === "visible" ? start() : stop()
    );
    window.addEventListener("pagehide", stop);
    return send;
  }

  function presenceChecks(box, video, send) {
    // "Still listening?" at the series' moments, while the video plays; the question and
    // the answer are both recorded (the time until an answer that is too late is away).
    const dialog = box.querySelector(".presence-check");
    if (!dialog || !box.dataset.checks) return;
    const now = Date.now();
    box.dataset.checks.split(" ").forEach((moment) => {
      const wait = Date.parse(moment) - now;
      if (!(wait > 0)) return;
      setTimeout(() => {
        if (video.paused || video.ended) return;
        dialog.hidden = false;
        send("check");
      }, wait);
    });
    dialog.querySelector("[data-answer]").addEventListener("click", () => {
      dialog.hidden = true;
      send("answer");
    });
  }

  function attachLive(box, video) {
    const src = box.dataset.src;
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({ enableWorker: false, liveSyncDurationCount: 3 });
      hls.on(window.Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal) return;
        // The stream is not on the air yet, or dropped for a moment: try again shortly.
        hls.stopLoad();
        setTimeout(() => hls.loadSource(src), 4000);
      });
      hls.loadSource(src);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src;
    } else {
      box.querySelector("[data-unsupported]").hidden = false;
    }
  }

  function watchStatus(page) {
    // Before and during the session: when the status changes (live, ended), reload.
    const url = page.dataset.statusUrl;
    const shown = page.dataset.status;
    if (!url || shown === "ended" || shown === "cancelled") return;
    setInterval(() => {
      fetch(url, { credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : null))
        .then((status) => {
          if (status && status.status !== shown) window.location.reload();
        })
        .catch(() => {});
    }, 15000);
  }

  document.querySelectorAll("[data-player]").forEach((box) => {
    const video = box.querySelector("video");
    if (box.dataset.player === "live") attachLive(box, video);
    const send = heartbeats(box, video);
    presenceChecks(box, video, send);
  });
  const page = document.querySelector("[data-status-url]");
  if (page) watchStatus(page);
})();
