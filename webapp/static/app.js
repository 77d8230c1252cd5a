// Small progressive enhancements; every page works without them.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button && button.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
document.addEventListener("change", (event) => {
  if (event.target.id === "language-select") event.target.form.requestSubmit();
});
// A "Copy link" button copies the field it names; the button says so for a moment.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {
    field.select();  // older WebViews (WeChat's): select it, and the page's copy command
    document.execCommand("copy");
  }
  button.textContent = button.dataset.copied;
  setTimeout(() => { button.textContent = label; }, 2000);
});
// A countdown to the next session, in the page's language, kept current each minute.
const countdown = document.querySelector("[data-countdown]");
if (countdown && window.Intl && Intl.RelativeTimeFormat) {
  const words = new Intl.RelativeTimeFormat(document.documentElement.lang || "zh-CN", { numeric: "auto" });
  const tick = () => {
    const minutes = Math.round((Date.parse(countdown.dateTime) - Date.now()) / 60000);
    if (minutes < 1) return;  // the page shows the join button after a reload
    countdown.textContent = minutes < 90 ? words.format(minutes, "minute")
      : minutes < 48 * 60 ? words.format(Math.round(minutes / 60), "hour")
      : words.format(Math.round(minutes / 1440), "day");
  };
  tick();
  setInterval(tick, 60000);
}
// A table wider than its card scrolls inside it: the keyboard can then reach and scroll it
// (a tab stop, named by the table's caption or the card's heading), and only then.
const scrollableTables = () => {
  for (const wrap of document.querySelectorAll(".table-wrap")) {
    const scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
    if (scrolls && !wrap.hasAttribute("tabindex")) {
      const heading = wrap.closest("section, .card, main")?.querySelector("h1, h2, h3, caption");
      wrap.tabIndex = 0;
      wrap.setAttribute("role", "region");
      if (heading) wrap.setAttribute("aria-label", heading.textContent.trim());
    } else if (!scrolls && wrap.getAttribute("tabindex") === "0") {
      wrap.removeAttribute("tabindex");
      wrap.removeAttribute("role");
      wrap.removeAttribute("aria-label");
    }
  }
};
scrollableTables();
window.addEventListener("resize", scrollableTables);
