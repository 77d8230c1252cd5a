// The room screen's check-in code: reload when the minute turns, so the code shown is valid.
(() => {
  "use strict";
  const screen = document.querySelector("[data-renew-in]");
  if (!screen) return;
  const seconds = Number(screen.dataset.renewIn) || 60;
  setTimeout(() => window.location.reload(), (seconds + 1) * 1000);
})();
