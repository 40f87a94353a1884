import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup, within } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Outcomes from "./Outcomes.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";
import { nav, go } from "../lib/nav.svelte";
import type { Report } from "../lib/bindings/Report";
import type { Indicator } from "../lib/bindings/Indicator";
import type { Share } from "../lib/bindings/Share";

const enums = [
  { name: "training_topic", values: [{ code: "photography", national: null, zh: "商品拍照与主图", en: "Product photography" }] },
];

const indicator = (key: string, count: number): Indicator => ({ key, count, households: [] });
const share = (numerator: number, denominator: number): Share => ({
  numerator,
  denominator,
  per_mille: denominator ? Math.floor((2 * numerator * 1000 + denominator) / (2 * denominator)) : null,
});

/** The figures of a caseload of 100 households, 62 of them above the line in 2025. */
function report(): Report {
  return {
    as_of: "2025-12-31",
    skills: {
      sessions: 12, minutes: 1440, person_minutes: 30000,
      by_topic: [{ topic: "photography", sessions: 12, minutes: 1440 }],
      households: indicator("skills.households", 100), reached: indicator("skills.reached", 80), coverage: share(80, 100),
      members_reached: 150, members: 350, member_coverage: share(150, 350), by_village: [], attendance: share(150, 160),
      scores: { topic: null, pairs: 40, households: indicator("skills.scores.households", 35), mean_pre: share(1800, 40), mean_post: share(2800, 40), mean_gain: share(1000, 40), passed: 30, passed_households: indicator("skills.scores.passed", 28), pass_share: share(30, 40) },
      scores_by_topic: [{ topic: "photography", pairs: 40, households: indicator("skills.scores.photography.households", 35), mean_pre: share(1800, 40), mean_post: share(2800, 40), mean_gain: share(1000, 40), passed: 30, passed_households: indicator("skills.scores.photography.passed", 28), pass_share: share(30, 40) }],
      activation: [
        { days: 30, eligible: indicator("skills.activation.30.eligible", 80), activated: indicator("skills.activation.30.activated", 20), share: share(20, 80) },
        { days: 90, eligible: indicator("skills.activation.90.eligible", 70), activated: indicator("skills.activation.90.activated", 35), share: share(35, 70) },
      ],
    },
    poverty: {
      years: [
        { year: 2024, line_fen: 400000, assessed: indicator("poverty.2024.assessed", 90), above: indicator("poverty.2024.above_line", 50), below: indicator("poverty.2024.below_line", 40), above_share: share(50, 90), crossed: indicator("poverty.2024.crossed", 5), mean_per_capita_fen: share(90 * 420000, 90), net_fen: 100000000, ecommerce_fen: 5000000, ecommerce_share: share(5000000, 100000000), ecommerce_households: indicator("poverty.2024.ecommerce", 30) },
        { year: 2025, line_fen: 400000, assessed: indicator("poverty.2025.assessed", 95), above: indicator("poverty.2025.above_line", 62), below: indicator("poverty.2025.below_line", 33), above_share: share(62, 95), crossed: indicator("poverty.2025.crossed", 12), mean_per_capita_fen: share(95 * 455000, 95), net_fen: 120000000, ecommerce_fen: 9000001, ecommerce_share: share(9000001, 120000000), ecommerce_households: indicator("poverty.2025.ecommerce", 41) },
      ],
      exited: indicator("poverty.exited", 55), monitored: indicator("poverty.monitored", 9), risk_removed: indicator("poverty.risk_removed", 4),
    },
    sustainability: {
      first_sales: indicator("sustainability.first_sales", 40),
      still_selling: Array.from({ length: 12 }, (_, index) => ({ months: index + 1, eligible: indicator(`sustainability.still_selling.${index + 1}.eligible`, 40), still: indicator(`sustainability.still_selling.${index + 1}.still`, 30 - index), share: share(30 - index, 40) })),
      months_by_year: [{ year: 2025, selling: indicator("sustainability.2025.selling", 45), months: 180, mean_months: share(180, 45) }],
      selling: indicator("sustainability.selling", 45), repeat: indicator("sustainability.repeat", 33), repeat_share: share(33, 45),
      sales: 420, sales_fen: 123456789, listings_live: 27, listing_households: indicator("sustainability.listings_live", 19),
    },
    reproducibility: {
      assistant_sessions: 9, farmer_sessions: 3, farmer_trainers: 2, farmer_trainer_households: indicator("reproducibility.farmer_trainers", 2),
      went_on_to_train: 2, went_on_households: indicator("reproducibility.went_on", 2), reached_by_farmers: indicator("reproducibility.reached_by_farmers", 14),
      lineage: [
        { id: "assistant", parent: null, name: "", household_id: null, sessions: 9, trainees: 120, trained: indicator("reproducibility.trained_by.assistant", 70) },
        { id: "m1", parent: "assistant", name: "王大山", household_id: "h1", sessions: 2, trainees: 10, trained: indicator("reproducibility.trained_by.m1", 9) },
      ],
      caseload: { households: indicator("reproducibility.caseload", 100), villages: 3, sales: 410, sales_fen: 123456789, selling: indicator("reproducibility.selling", 45) },
    },
  };
}

const households = [
  { id: "h1", register_no: "5226330001", head_name: "王大山", village_name: "青山村", group_name: "一组" },
  { id: "h3", register_no: "5226330003", head_name: "张三", village_name: "高坡村", group_name: null },
];

describe("Outcomes", () => {
  let calls: { command: string; args: Record<string, unknown> }[] = [];

  beforeEach(async () => {
    calls = [];
    locale.language = "zh-CN";
    go("outcomes");
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      calls.push({ command, args: payload });
      switch (command) {
        case "enum_labels": return enums;
        case "list_villages": return [{ id: "v1", name: "青山村" }];
        case "outcomes": return report();
        case "outcome_households": return payload.key === "poverty.2025.above_line" ? households : [];
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("shows each outcome's headline figures", async () => {
    render(Outcomes);
    const poverty = await screen.findByTestId("card-poverty");
    expect(poverty.textContent).toContain("62 户高于贫困线");
    expect(poverty.textContent).toContain("65.3%");
    expect(poverty.textContent).toContain("12 户当年越线");
    expect(poverty.textContent).toContain("电商收入 90,000.01 元");
    expect(poverty.textContent).toContain("户均人均纯收入 4,550.00 元（贫困线 4,000.00 元）");
    const skills = screen.getByTestId("card-skills");
    expect(skills.textContent).toContain("培训 12 场，共 24.0 小时");
    expect(skills.textContent).toContain("平均提高 25.0 分");
    expect(skills.textContent).toContain("30 天内上架 20 户（可观察 80 户）");
    const sustainability = screen.getByTestId("card-sustainability");
    expect(sustainability.textContent).toContain("首次销售 6 个月后仍在销售 25 户（可观察 40 户）");
    expect(sustainability.textContent).toContain("在售商品 27 件，来自 19 户");
    const reproducibility = screen.getByTestId("card-reproducibility");
    expect(reproducibility.textContent).toContain("2 名农户讲师");
    expect(reproducibility.textContent).toContain("1,234,567.89 元");
    for (const chart of ["chart-income", "chart-gain", "chart-selling", "chart-lineage"]) expect(screen.getByTestId(chart)).toBeTruthy();
  });

  it("opens the households behind a figure, and a household's page from the list", async () => {
    render(Outcomes);
    const poverty = await screen.findByTestId("card-poverty");
    await fireEvent.click(within(poverty).getByText("62 户高于贫困线"));
    const list = await screen.findByTestId("drill-list");
    const rows = within(list).getAllByTestId("drill-household");
    expect(rows.map((row) => row.textContent)).toEqual(["5226330001王大山青山村一组", "5226330003张三高坡村"]);
    expect(calls.find((call) => call.command === "outcome_households")?.args.key).toBe("poverty.2025.above_line");
    expect(screen.getByTestId("drill-down").textContent).toContain("62 户高于贫困线");
    await fireEvent.click(within(rows[1]).getByText("张三"));
    expect(nav.screen).toBe("household");
    expect(nav.householdId).toBe("h3");
  });

  it("asks again with the chosen year, village and topic", async () => {
    render(Outcomes);
    await screen.findByTestId("card-poverty");
    await vi.waitFor(() => expect(screen.getByTestId("filter-year").querySelectorAll("option").length).toBeGreaterThan(2));
    const year = screen.getByTestId("filter-year") as HTMLSelectElement;
    year.value = "2025";
    await fireEvent.change(year);
    const topic = screen.getByTestId("filter-topic") as HTMLSelectElement;
    topic.value = "photography";
    await fireEvent.change(topic);
    const village = screen.getByTestId("filter-village") as HTMLSelectElement;
    village.value = "v1";
    await fireEvent.change(village);
    await vi.waitFor(() => {
      const last = calls.filter((call) => call.command === "outcomes").at(-1);
      expect(last?.args.filter).toMatchObject({ year: 2025, topic: "photography", village_id: "v1" });
    });
  });

  it("speaks English with ASCII punctuation", async () => {
    locale.language = "en";
    render(Outcomes);
    const poverty = await screen.findByTestId("card-poverty");
    expect(poverty.textContent).toContain("62 households above the poverty line");
    expect(poverty.textContent).toContain("Mean per-capita net income 4,550.00 yuan (line 4,000.00 yuan)");
    expect(screen.getByTestId("card-sustainability").textContent).toContain("25 still selling 6 months after their first sale (of 40 observable)");
  });
});
