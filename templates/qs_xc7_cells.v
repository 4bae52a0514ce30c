// Simulation models of the XC7 cells in hdl/qs_xc7.vhd for the compiled simulator, as UG953 defines them
// (the same definitions as sim/qs_xc7_cells.vhd): a LUT6 outputs bit I5..I0 of its INIT, a MUXF7/MUXF8
// outputs I1 when S is 1, else I0.  Not for synthesis: yosys and Vivado take their own.
module LUT6 #(parameter [63:0] INIT = 64'h0) (output O, input I0, input I1, input I2, input I3, input I4, input I5);
  assign O = INIT[{I5, I4, I3, I2, I1, I0}];
endmodule

module MUXF7 (output O, input I0, input I1, input S);
  assign O = S ? I1 : I0;
endmodule

module MUXF8 (output O, input I0, input I1, input S);
  assign O = S ? I1 : I0;
endmodule
