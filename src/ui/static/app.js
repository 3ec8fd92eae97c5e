// promsync operator UI: the only script. Pages work without it; it adds "select all".
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!box.classList || !box.classList.contains("select-all")) return;
  const form = box.closest("form");
  if (!form) return;
  form.querySelectorAll('input[name="order_id"]').forEach((b) => { b.checked = box.checked; });
});
