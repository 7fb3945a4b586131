// The ordering page: cart (kept in localStorage), checkout with an Idempotency-Key so a
// double click or a retry never orders twice.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const CART = "brigade.cart";
  const menu = document.getElementById("menu");
  const shopId = menu ? menu.dataset.shopId : null;
  const lines = document.getElementById("cart-lines");
  const empty = document.getElementById("cart-empty");
  const total = document.getElementById("cart-total");
  const place = document.getElementById("place-order");
  const auto = document.getElementById("auto-shop");
  const lat = document.getElementById("delivery-lat");
  const lon = document.getElementById("delivery-lon");
  let pendingKey = null; // the Idempotency-Key of the order being placed
  let placing = false;

  function load() {
    try {
      const cart = JSON.parse(localStorage.getItem(CART));
      if (cart && cart.shopId === shopId) return cart;
    } catch (_) { /* a fresh cart */ }
    return { shopId, items: [] };
  }
  let cart = load();
  function save() { localStorage.setItem(CART, JSON.stringify(cart)); pendingKey = null; render(); }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function render() {
    lines.replaceChildren();
    let sum = 0;
    let currency = "";
    cart.items.forEach((line) => {
      sum += line.price * line.quantity;
      currency = line.currency;
      const li = document.createElement("li");
      li.className = "cart-line";
      li.dataset.itemId = line.itemId;
      const label = document.createElement("span");
      label.textContent = `${line.quantity} × ${line.name}`;
      const minus = button("−", `One ${line.name} less`, () => change(line.itemId, -1));
      const plus = button("+", `One ${line.name} more`, () => change(line.itemId, 1));
      li.append(label, " ", minus, plus);
      lines.append(li);
    });
    empty.hidden = cart.items.length > 0;
    total.textContent = cart.items.length ? brigade.money(sum, currency) : "—";
    const s = brigade.session();
    place.disabled = placing || !cart.items.length || !s;
    place.textContent = s ? "Place order" : "Log in to place the order";
  }

  function button(text, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  function change(itemId, delta) {
    const line = cart.items.find((l) => l.itemId === itemId);
    if (!line) return;
    line.quantity += delta;
    if (line.quantity <= 0) cart.items = cart.items.filter((l) => l !== line);
    save();
  }

  document.querySelectorAll("button.add[data-item-id]").forEach((b) => {
    b.addEventListener("click", () => {
      const itemId = b.dataset.itemId;
      const line = cart.items.find((l) => l.itemId === itemId);
      if (line) line.quantity += 1;
      else cart.items.push({ itemId, name: b.dataset.name, price: Number(b.dataset.price), currency: b.dataset.currency, quantity: 1 });
      save();
      brigade.message(`${b.dataset.name} added to the cart.`, "ok");
    });
  });

  document.getElementById("locate").addEventListener("click", () => {
    if (!navigator.geolocation) { brigade.message("This browser cannot tell its location.", "error"); return; }
    navigator.geolocation.getCurrentPosition(
      (p) => { lat.value = p.coords.latitude.toFixed(4); lon.value = p.coords.longitude.toFixed(4); },
      () => brigade.message("The location is not available; type it in instead.", "error"),
    );
  });

  const shopClosed = menu && menu.dataset.shopOpen === "false";
  if (shopClosed) auto.checked = true;

  place.addEventListener("click", async () => {
    if (placing) return; // a double click: the first request is still on its way
    placing = true;
    render();
    brigade.clearMessages();
    const body = {
      items: cart.items.map((l) => ({ item_id: l.itemId, quantity: l.quantity })),
      delivery: { lat: Number(lat.value), lon: Number(lon.value) },
    };
    if (!auto.checked && shopId) body.shop_id = shopId;
    if (!pendingKey) pendingKey = newKey();
    try {
      const { data } = await brigade.api("POST", "/api/v1/orders", { body, headers: { "idempotency-key": pendingKey } });
      cart = { shopId, items: [] };
      localStorage.setItem(CART, JSON.stringify(cart));
      window.location.assign(`/orders/${data.id}`);
      return;
    } catch (error) {
      // Only a request still in progress may be retried with the same key; anything else was
      // answered for good, so the next attempt is a new order.
      if (!(error.problem && /request-in-progress/.test(error.problem.type || ""))) pendingKey = null;
      brigade.showError(error);
    }
    placing = false;
    render();
  });

  brigade.onSession(() => render());
});
