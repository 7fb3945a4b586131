// The live order page: polls GET /api/v1/orders/{id} with If-None-Match (a 304 costs almost
// nothing) and backs off while nothing changes.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("order");
  const id = section.dataset.orderId;
  const FINAL = ["delivered", "cancelled", "payment_failed"];
  const LABELS = {
    awaiting_payment: "Waiting for the payment", payment_failed: "Payment failed", placed: "Placed",
    accepted: "Accepted by the shop", preparing: "In the kitchen", ready: "Ready for the courier",
    out_for_delivery: "On its way", delivered: "Delivered", cancelled: "Cancelled",
  };
  let etag = null;
  let shopShown = null;
  let delay = 1000;
  let done = false;
  let stop = null;

  function show(order) {
    const status = document.getElementById("order-status");
    status.textContent = LABELS[order.status] || order.status;
    status.dataset.status = order.status;
    document.getElementById("order-eta").textContent =
      order.status === "delivered" ? "delivered" : brigade.time(order.estimated_delivery_at);
    document.getElementById("order-total").textContent = brigade.money(order.total_minor, order.currency);
    showShop(order.shop_id);
    const reached = new Map(order.history.map((e) => [e.status, e.at]));
    document.querySelectorAll("#timeline li").forEach((li) => {
      const at = reached.get(li.dataset.status);
      li.classList.toggle("done", !!at);
      li.classList.toggle("current", li.dataset.status === order.status);
      if (li.dataset.status === order.status) li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
      let small = li.querySelector("small");
      if (at) {
        if (!small) { small = document.createElement("small"); li.append(" ", small); }
        small.textContent = brigade.time(at);
      }
    });
    const lines = document.getElementById("order-lines");
    lines.replaceChildren(...order.lines.map((l) => {
      const li = document.createElement("li");
      li.textContent = `${l.quantity} × ${l.name}`;
      return li;
    }));
    document.getElementById("order-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    done = FINAL.includes(order.status);
  }

  // The shop brigade picked (or the customer chose), by name; looked up once per order.
  async function showShop(shopId) {
    if (shopShown === shopId) return;
    shopShown = shopId;
    let name = "a brigade shop";
    try { name = (await brigade.api("GET", `/api/v1/shops/${shopId}`)).data.name; } catch (_) { shopShown = null; }
    const shop = document.getElementById("order-shop");
    shop.textContent = name;
    shop.dataset.shopId = shopId;
  }

  async function tick() {
    if (!brigade.session() || done) return;
    const headers = etag ? { "if-none-match": etag } : {};
    const { status, headers: h, data } = await brigade.api("GET", `/api/v1/orders/${id}`, { headers });
    if (status === 304) { delay = Math.min(delay * 1.5, 5000); return; }
    etag = h.get("etag");
    delay = 1000;
    show(data);
  }

  brigade.onSession((s) => {
    document.getElementById("order").hidden = !s;
    if (s && !stop) stop = brigade.every(tick, () => delay);
  });
});
