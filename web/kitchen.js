// The kitchen display: a station's FIFO ticket queue with one-click claim and complete, new
// orders to accept, refreshed every two seconds; tickets past their order's ready time are
// marked late.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("kitchen");
  const select = document.getElementById("station-select");
  const list = document.getElementById("tickets");
  const orders = document.getElementById("new-orders");
  const readyAt = new Map(); // order id → estimated_ready_at (fixed when the order is placed)
  let shopId = null;
  let stop = null;

  function button(text, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", async () => {
      b.disabled = true;
      brigade.clearMessages();
      try { await onClick(); } catch (error) { brigade.showError(error); }
      await refresh().catch(brigade.showError);
    });
    return b;
  }

  async function readyTime(orderId) {
    if (!readyAt.has(orderId)) {
      const { data } = await brigade.api("GET", `/api/v1/orders/${orderId}`);
      readyAt.set(orderId, data.estimated_ready_at);
    }
    return readyAt.get(orderId);
  }

  async function renderTickets() {
    const station = select.value;
    if (!station) return;
    const { data: tickets } = await brigade.api("GET", `/api/v1/kitchen/stations/${station}/tickets`);
    const items = [];
    for (const t of tickets) {
      const li = document.createElement("li");
      li.className = `ticket ${t.status}`;
      li.dataset.ticketId = t.id;
      li.dataset.status = t.status;
      const due = await readyTime(t.order_id).catch(() => null);
      const late = due && Date.now() > new Date(due).getTime();
      if (late) li.classList.add("late");
      const head = document.createElement("p");
      const strong = document.createElement("strong");
      strong.textContent = `Order ${t.order_id.slice(-6)}`;
      head.append(strong, ` · ${t.status}`);
      if (due) head.append(` · due ${brigade.time(due)}`);
      if (late) { const b = document.createElement("span"); b.className = "badge"; b.textContent = "late"; head.append(" ", b); }
      if (!t.claimable && t.status === "queued") head.append(" · waiting for the order to be accepted");
      const what = document.createElement("ul");
      t.items.forEach((i) => { const x = document.createElement("li"); x.textContent = `${i.quantity} × ${i.name}`; what.append(x); });
      li.append(head, what);
      if (t.status === "queued" && t.claimable)
        li.append(button("Claim", `Claim the ticket of order ${t.order_id.slice(-6)}`,
          () => brigade.api("POST", `/api/v1/kitchen/tickets/${t.id}/claim`)));
      if (t.status === "claimed")
        li.append(button("Done", `Complete the ticket of order ${t.order_id.slice(-6)}`,
          () => brigade.api("POST", `/api/v1/kitchen/tickets/${t.id}/complete`)));
      items.push(li);
    }
    list.replaceChildren(...items);
    document.getElementById("no-tickets").hidden = items.length > 0;
  }

  async function renderOrders() {
    const { data } = await brigade.api("GET", `/api/v1/orders?shop_id=${shopId}&status=placed`);
    const items = data.items.slice().reverse().map((o) => {
      const li = document.createElement("li");
      li.className = "ticket";
      li.dataset.orderId = o.id;
      li.textContent = `Order ${o.id.slice(-6)} · ${brigade.money(o.total_minor, o.currency)} · placed ${brigade.time(o.created_at)} `;
      li.append(button("Accept", `Accept order ${o.id.slice(-6)}`, () => brigade.api("PATCH", `/api/v1/orders/${o.id}`,
        { body: { status: "accepted" }, headers: { "if-match": `"${o.version}"` } })));
      return li;
    });
    orders.replaceChildren(...items);
    document.getElementById("no-orders").hidden = items.length > 0;
  }

  async function refresh() {
    await renderTickets();
    await renderOrders();
    document.getElementById("kitchen-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  async function start(s) {
    if (s.account.role !== "staff" && s.account.role !== "admin") {
      brigade.message("The kitchen display is for the shop's staff. Log in with a staff account.", "error");
      return;
    }
    shopId = s.account.shop_id;
    if (!shopId) {
      const { data: shops } = await brigade.api("GET", "/api/v1/shops");
      shopId = shops.length ? shops[0].id : null;
    }
    if (!shopId) return;
    const { data: stations } = await brigade.api("GET", `/api/v1/shops/${shopId}/stations`);
    const wanted = new URLSearchParams(location.search).get("station");
    select.replaceChildren(...stations.map((st) => {
      const o = document.createElement("option");
      o.value = st.id;
      o.textContent = st.name;
      o.selected = st.id === wanted;
      return o;
    }));
    section.hidden = false;
    if (!stop) stop = brigade.every(refresh, () => 2000);
  }

  select.addEventListener("change", () => {
    const url = new URL(location.href);
    url.searchParams.set("station", select.value);
    history.replaceState(null, "", url);
    refresh().catch(brigade.showError);
  });

  brigade.onSession((s) => {
    if (!s) { section.hidden = true; if (stop) { stop(); stop = null; } return; }
    start(s).catch(brigade.showError);
  });
});
