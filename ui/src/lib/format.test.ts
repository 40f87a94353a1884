import { describe, expect, it } from "vitest";
import { parseYuan, tidyDate, tidyTime, yuan } from "./format";

describe("format", () => {
  it("tidies typed dates into year-month-day and leaves other text for the core to refuse", () => {
    expect(tidyDate("2001/5/4")).toBe("2001-05-04");
    expect(tidyDate("2001.05.04")).toBe("2001-05-04");
    expect(tidyDate("2001年5月4日")).toBe("2001-05-04");
    expect(tidyDate(" 20010504 ")).toBe("2001-05-04");
    expect(tidyDate("2001-05-04")).toBe("2001-05-04");
    expect(tidyDate("5/4/2001")).toBe("5/4/2001");
  });

  it("tidies typed times into hour:minute", () => {
    expect(tidyTime("9:5")).toBe("09:05");
    expect(tidyTime("0930")).toBe("09:30");
    expect(tidyTime("14点30分")).toBe("14:30");
    expect(tidyTime("noon")).toBe("noon");
  });

  it("turns yuan into fen and back without floating point", () => {
    expect(parseYuan("12.5")).toBe(1250);
    expect(parseYuan("0.07")).toBe(7);
    expect(parseYuan("12.345")).toBeNull();
    expect(yuan(123456)).toBe("1,234.56");
  });
});

describe("maskIdCard", () => {
  it("shows only the first and last four characters", async () => {
    const { maskIdCard } = await import("./format");
    expect(maskIdCard("530724198506120018")).toBe("5307**********0018");
    expect(maskIdCard("53072419850612001X")).toBe("5307**********001X");
    expect(maskIdCard(null)).toBe("");
  });
});
