// Small behaviour shared by the admin and the cabinet: toasts from HX-Trigger (confirmations
// of dangerous buttons are hx-confirm's). Loaded without defer, before the body: it only adds
// listeners on document (it must not look for elements), so none of them comes too late.
document.addEventListener("toast", function (e) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const div = document.createElement("div");
  div.className = "toast";
  div.textContent = e.detail.value;
  box.appendChild(div);
  setTimeout(function () { div.remove(); }, 4000);
});
// A 4xx/5xx answer to an HTMX request still carries a fragment (a form with its errors):
// swap it in instead of dropping it.
document.addEventListener("htmx:beforeSwap", function (e) {
  const code = e.detail.xhr.status;
  if (code === 422 || code === 409 || code === 403) { e.detail.shouldSwap = true; e.detail.isError = false; }
});
// A filter <select data-autosubmit> submits its form on change (inline onchange handlers are
// refused by the Content-Security-Policy).
document.addEventListener("change", function (e) {
  const el = e.target;
  if (el.matches && el.matches("select[data-autosubmit]") && el.form) el.form.submit();
});
