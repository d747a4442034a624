// Deleting is final: forms with data-confirm ask first (without JavaScript they simply post).
document.addEventListener("submit", (event) => {
  const text = event.target.dataset.confirm;
  if (text && !window.confirm(text)) event.preventDefault();
});
