// The Reports page's charts (issue 14): reads the figures the page embedded as JSON
// (#report-data, words already translated) and draws them with the vendored echarts.
// It works nothing out: every value is the report's own; money is divided by the
// currency's minor unit only to put it on an axis (the tables carry the exact amounts).
(function () {
  "use strict";

  function pct(v) { return v == null ? "—" : (v * 100).toFixed(1) + "%"; }

  function moneyFmt(data) {
    var f;
    try {
      f = new Intl.NumberFormat(data.lang, {style: "currency", currency: data.currency});
    } catch (e) {
      f = {format: function (x) { return x.toFixed(2) + " " + data.currency; }};
    }
    return function (minor) { return minor == null ? "—" : f.format(minor / data.scale).replace("CN¥", "¥"); };
  }

  function empty(w) {
    return {title: {text: w.empty, left: "center", top: "middle", textStyle: {color: "#888", fontSize: 13}}};
  }

  function mixOption(data) {
    var w = data.words, m = data.mix;
    if (!m.channels.length) return empty(w);
    var series = [{
      name: w.room_nights_share, type: "pie", radius: ["28%", "50%"], center: ["25%", "55%"], minShowLabelAngle: 2,
      label: {formatter: function (p) { return p.name + "\n" + pct(p.value); }},
      data: m.channels.map(function (c, i) { return {name: c.name, value: m.room_nights_share[i]}; })
    }];
    var rev = m.revenue_share[0];
    if (rev) {
      series.push({
        name: w.revenue_share + " (" + rev.currency + ")", type: "pie", radius: ["28%", "50%"],
        center: ["75%", "55%"], minShowLabelAngle: 2,
        label: {formatter: function (p) { return p.name + "\n" + pct(p.value); }},
        data: m.channels.map(function (c, i) { return {name: c.name, value: rev.shares[i]}; })
      });
    }
    return {
      tooltip: {trigger: "item", formatter: function (p) { return p.seriesName + "<br>" + p.name + ": " + pct(p.value); }},
      title: [{text: w.room_nights_share, left: "25%", top: 0, textAlign: "center", textStyle: {fontSize: 12}},
              rev ? {text: w.revenue_share + " (" + rev.currency + ")", left: "75%", top: 0, textAlign: "center",
                     textStyle: {fontSize: 12}} : {}],
      series: series
    };
  }

  function overTimeOption(data) {
    var w = data.words, t = data.over_time, fmt = moneyFmt(data);
    if (!t.periods.length) return empty(w);
    var series = [];
    if (t.has_occupancy) {
      t.series.forEach(function (s) {
        series.push({name: s.name + " · " + w.occupancy, type: "bar", stack: t.stacked ? "occ" : undefined,
                     yAxisIndex: 0, data: s.occupancy});
      });
    }
    t.series.forEach(function (s) {
      series.push({name: s.name + " · " + w.adr, type: "line", yAxisIndex: t.has_occupancy ? 1 : 0,
                   connectNulls: false, symbolSize: 6, data: s.adr_minor});
    });
    var yAxes = [];
    if (t.has_occupancy) yAxes.push({type: "value", name: w.occupancy, axisLabel: {formatter: pct}});
    yAxes.push({type: "value", name: w.adr + " (" + data.currency + ")", axisLabel: {formatter: fmt},
                splitLine: {show: !t.has_occupancy}});
    return {
      tooltip: {trigger: "axis", valueFormatter: null, formatter: function (ps) {
        return ps[0].axisValue + "<br>" + ps.map(function (p) {
          var isOcc = p.seriesType === "bar";
          return p.marker + p.seriesName + ": " + (isOcc ? pct(p.value) : fmt(p.value));
        }).join("<br>");
      }},
      legend: {type: "plain", top: 0, itemWidth: 14, itemGap: 8, textStyle: {fontSize: 11}},
      grid: {left: 60, right: 70, top: 20 + 22 * Math.ceil(series.length / 4), bottom: 30},
      xAxis: {type: "category", data: t.periods},
      yAxis: yAxes,
      series: series
    };
  }

  function leadOption(data) {
    var w = data.words, l = data.lead_time;
    if (!l.series.length) return empty(w);
    return {
      tooltip: {trigger: "axis"},
      legend: {type: "scroll", top: 0},
      grid: {left: 50, right: 20, top: 40, bottom: 50},
      xAxis: {type: "category", data: l.buckets, name: w.lead_days, nameLocation: "middle", nameGap: 28},
      yAxis: {type: "value", name: w.bookings, minInterval: 1},
      series: l.series.map(function (s) { return {name: s.name, type: "bar", stack: "lead", data: s.counts}; })
    };
  }

  function cancelOption(data) {
    var w = data.words, c = data.cancellations;
    if (!c.channels.length) return empty(w);
    return {
      tooltip: {trigger: "axis", formatter: function (ps) {
        var i = ps[0].dataIndex;
        return c.channels[i] + "<br>" + w.cancellation_rate + ": " + pct(c.rate[i]) + "<br>" +
          w.cancelled + " " + c.cancelled[i] + " / " + w.booked + " " + c.booked[i];
      }},
      grid: {left: 60, right: 20, top: 30, bottom: 40},
      xAxis: {type: "category", data: c.channels},
      yAxis: {type: "value", name: w.cancellation_rate, min: 0, max: 1, axisLabel: {formatter: pct}},
      series: [{name: w.cancellation_rate, type: "bar", data: c.rate,
                label: {show: true, position: "top", formatter: function (p) { return pct(p.value); }}}]
    };
  }

  var OPTIONS = {"mix": mixOption, "over-time": overTimeOption, "lead-time": leadOption,
                 "cancellations": cancelOption};

  function draw() {
    var node = document.getElementById("report-data");
    if (!node || typeof echarts === "undefined") return;
    var data = JSON.parse(node.textContent);
    var charts = [];
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var make = OPTIONS[el.getAttribute("data-chart")];
      if (!make) return;
      var chart = echarts.init(el, null, {renderer: "canvas"});
      chart.on("finished", function () { el.setAttribute("data-drawn", "1"); });
      chart.setOption(Object.assign({animation: false}, make(data)));
      charts.push(chart);
    });
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
