// The Stalker console's "+" dialog (templates/admin/stalker/_add_dialog.html): it opens when
// its content arrives and closes on its Close button (inline handlers are refused by the CSP).
document.addEventListener("htmx:afterSwap", function (e) {
  const dialog = e.detail.target;
  if (dialog && dialog.id === "stalker-dialog" && !dialog.open) dialog.showModal();
});
document.addEventListener("click", function (e) {
  const button = e.target.closest && e.target.closest("[data-close-dialog]");
  if (button && button.closest("dialog")) button.closest("dialog").close();
});
