// The courier view: the shop's orders at the pass (pick up) and on the road (delivered),
// refreshed every three seconds.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("courier");
  let stop = null;

  function entry(order, label, next) {
    const li = document.createElement("li");
    li.className = "ticket";
    li.dataset.orderId = order.id;
    li.textContent = `Order ${order.id.slice(-6)} · ${brigade.money(order.total_minor, order.currency)} · due ${brigade.time(order.estimated_delivery_at)} `;
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.setAttribute("aria-label", `${label}: order ${order.id.slice(-6)}`);
    b.addEventListener("click", async () => {
      b.disabled = true;
      brigade.clearMessages();
      try {
        await brigade.api("PATCH", `/api/v1/orders/${order.id}`,
          { body: { status: next }, headers: { "if-match": `"${order.version}"` } });
      } catch (error) { brigade.showError(error); }
      await refresh().catch(brigade.showError);
    });
    li.append(b);
    return li;
  }

  async function fill(status, listId, emptyId, label, next) {
    const { data } = await brigade.api("GET", `/api/v1/orders?status=${status}`);
    const items = data.items.slice().reverse().map((o) => entry(o, label, next));
    document.getElementById(listId).replaceChildren(...items);
    document.getElementById(emptyId).hidden = items.length > 0;
  }

  async function refresh() {
    await fill("ready", "ready-orders", "no-ready", "Pick up", "out_for_delivery");
    await fill("out_for_delivery", "road-orders", "no-road", "Delivered", "delivered");
    document.getElementById("courier-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  brigade.onSession((s) => {
    if (!s) { section.hidden = true; if (stop) { stop(); stop = null; } return; }
    if (s.account.role !== "courier" && s.account.role !== "admin") {
      brigade.message("This view is for couriers. Log in with a courier account.", "error");
      return;
    }
    section.hidden = false;
    if (!stop) stop = brigade.every(refresh, () => 3000);
  });
});
