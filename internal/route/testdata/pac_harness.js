// Evaluates a PAC file the way a browser does: the standard PAC helper
// functions (as Netscape defined them and browsers still provide), then
// FindProxyForURL for each URL. Usage: node pac_harness.js PACFILE < urls
// (one per line); prints one result per line. Name resolution is
// forbidden: a PAC that resolves names makes the browser leak them.
"use strict";
const fs = require("fs");
const vm = require("vm");

function convert_addr(ip) {
  const b = ip.split(".");
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}
const helpers = {
  isPlainHostName: (host) => host.indexOf(".") < 0,
  dnsDomainIs: (host, domain) => host.length >= domain.length && host.substring(host.length - domain.length) == domain,
  localHostOrDomainIs: (host, hostdom) => host == hostdom || (host.indexOf(".") < 0 && hostdom.indexOf(host + ".") == 0),
  isResolvable: () => { throw new Error("isResolvable resolves a name"); },
  dnsResolve: (host) => {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return host;
    throw new Error("dnsResolve(" + host + ") resolves a name");
  },
  myIpAddress: () => "127.0.0.1",
  dnsDomainLevels: (host) => host.split(".").length - 1,
  shExpMatch: (str, shexp) => new RegExp("^" + shexp.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$").test(str),
  isInNet: (ipaddr, pattern, maskstr) => {
    const test = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
    if (!test.test(ipaddr)) ipaddr = helpers.dnsResolve(ipaddr);
    if (!test.test(ipaddr) || !test.test(pattern) || !test.test(maskstr)) return false;
    const host = convert_addr(ipaddr), pat = convert_addr(pattern), mask = convert_addr(maskstr);
    return ((host & mask) >>> 0) == ((pat & mask) >>> 0);
  },
  weekdayRange: () => true, dateRange: () => true, timeRange: () => true,
  alert: () => {},
};

const ctx = vm.createContext(Object.assign({}, helpers));
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx, { filename: "proxy.pac", timeout: 2000 });
const lines = fs.readFileSync(0, "utf8").split("\n").filter((l) => l != "");
const out = [];
for (const u of lines) {
  // A browser passes the URL's host as written, IPv6 in brackets.
  const host = new URL(u).hostname;
  ctx.__url = u; ctx.__host = host;
  out.push(vm.runInContext("FindProxyForURL(__url, __host)", ctx, { timeout: 2000 }));
}
process.stdout.write(out.join("\n") + "\n");
